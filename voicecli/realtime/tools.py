"""Tools the model may call: their definitions for ``session.update`` and running a call.

A call comes from the model, so every mistake in it is the model's to fix, not ours to crash on:
an unknown tool, arguments that are not a JSON object or do not fit the tool's schema, a tool that
fails or runs too long. Each becomes a ``ToolResult`` with ``ok=False`` and an ``output`` of
``{"error": "..."}`` written for the model to read and correct itself.

Command tools run the user's program directly (a list, never a shell) with the arguments as JSON on
stdin; stdout is the result. Each runs in its own process group so that a timeout or a cancelled
response stops whatever it started, not just the program itself.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import difflib
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from voicecli.config import CommandTool, Settings
from voicecli.errors import ConfigError

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]

DEFAULT_OUTPUT_CAP = 16 * 1024  # bytes of stdout handed to the model; more only costs tokens
_STDERR_TAIL = 4 * 1024  # enough for the last line of an error message
_READ_CHUNK = 64 * 1024
_REAP_GRACE_S = 1.0  # a killed group is gone in milliseconds; more means something escaped it

# The Chat Completions rule for function names. The Realtime docs state none, so we assume the
# same: over WebRTC a session.update the service refuses may cost the data channel (§5.2).
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# A program the model can start has no use for our API key.
_SECRET_ENV = frozenset({"OPENAI_API_KEY", "VOICECLI_API_API_KEY"})


class ToolError(Exception):
    """A tool's expected failure; the message is shown to the model as it is."""


class Tool(Protocol):
    """Something the model can call. ``run`` gets validated arguments and returns a string.

    ``run`` must bound its own running time: the registry does not impose one.
    """

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def parameters(self) -> Mapping[str, Any]: ...

    async def run(self, arguments: JsonObject) -> str: ...


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The outcome of one call; ``output`` is what goes into ``function_call_output``."""

    call_id: str
    name: str
    output: str
    ok: bool
    duration_s: float
    error: str | None = None


def error_output(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)


# ---- argument validation ----------------------------------------------------------------------
#
# A small JSON-schema subset: type, properties, required, enum, items, additionalProperties.
# Other keywords are not checked here (the tool itself may still refuse the value).

_JSON_TYPES: dict[str, Callable[[object], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def _json_type(value: object) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _JSON_TYPES[name](value):
            return name
    return type(value).__name__


def schema_errors(value: object, schema: Mapping[str, Any], path: str = "arguments") -> list[str]:
    """Why ``value`` does not fit ``schema``, one message per problem (empty when it fits)."""
    wrong = _type_error(value, schema, path) or _enum_error(value, schema, path)
    if wrong is not None:
        return [wrong]
    if isinstance(value, dict):
        return _object_errors(value, schema, path)
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, Mapping):
        return [e for i, v in enumerate(value) for e in schema_errors(v, items, f"{path}[{i}]")]
    return []


def _type_error(value: object, schema: Mapping[str, Any], path: str) -> str | None:
    expected = schema.get("type")
    names = [expected] if isinstance(expected, str) else expected
    if not isinstance(names, list):
        return None
    # A type name we do not know (or a non-string) is not the model's fault: it passes.
    checks = [_JSON_TYPES.get(n, _any) if isinstance(n, str) else _any for n in names]
    if any(check(value) for check in checks):
        return None
    return f"{path}: expected {' or '.join(map(str, names))}, got {_json_type(value)}"


def _enum_error(value: object, schema: Mapping[str, Any], path: str) -> str | None:
    enum = schema.get("enum")
    if not isinstance(enum, list) or value in enum:
        return None
    choices = ", ".join(_show(c) for c in enum)
    return f"{path}: must be one of {choices}, got {_show(value)}"


def _show(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _any(_value: object) -> bool:
    return True


def _object_errors(value: JsonObject, schema: Mapping[str, Any], path: str) -> list[str]:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    required = schema.get("required")
    errors = [
        f"{path}: missing required property {name!r}"
        for name in (required if isinstance(required, list) else [])
        if name not in value
    ]
    for name, item in value.items():
        if name in properties and isinstance(properties[name], Mapping):
            errors += schema_errors(item, properties[name], f"{path}.{name}")
        elif name not in properties and schema.get("additionalProperties") is False:
            errors.append(f"{path}: unexpected property {name!r} (known: {', '.join(properties)})")
    return errors


def parse_arguments(arguments_json: str, schema: Mapping[str, Any]) -> JsonObject:
    """The call's arguments as an object that fits ``schema``, or ToolError saying why not."""
    if not arguments_json.strip():
        return {}  # some models send "" for a tool without parameters
    try:
        arguments = json.loads(arguments_json)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ToolError(f"arguments are not valid JSON: {exc}") from None
    if not isinstance(arguments, dict):
        raise ToolError(f"arguments must be a JSON object, got {_json_type(arguments)}")
    problems = schema_errors(arguments, schema)
    if problems:
        raise ToolError("invalid arguments: " + "; ".join(problems))
    return arguments


# ---- the registry -----------------------------------------------------------------------------


class ToolRegistry:
    """The session's tools by name: their wire definitions, and running calls safely."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"duplicate tool name {tool.name!r}")
            self._tools[tool.name] = tool

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def definitions(self) -> list[JsonObject]:
        """The ``session.tools`` list: only the four documented fields per tool."""
        return [
            {
                "type": "function",
                "name": tool.name,
                "description": tool.description,
                "parameters": dict(tool.parameters),
            }
            for tool in self._tools.values()
        ]

    async def call(self, name: str, arguments_json: str, call_id: str) -> ToolResult:
        """Run one call. Never raises for a bad call or a failing tool; cancellation propagates."""
        started = time.monotonic()
        try:
            output = await self._run(name, arguments_json)
        except ToolError as exc:
            return self._failed(call_id, name, str(exc), started)
        except Exception as exc:  # a broken tool must not end the session
            log.debug("tool %s raised", name, exc_info=True)
            return self._failed(call_id, name, f"tool failed: {type(exc).__name__}: {exc}", started)
        duration = time.monotonic() - started
        log.debug("tool %s ok in %.3f s", name, duration)
        return ToolResult(call_id, name, output, ok=True, duration_s=duration)

    async def _run(self, name: str, arguments_json: str) -> str:
        tool = self._tools.get(name)
        if tool is None:
            known = ", ".join(self._tools) or "none"
            raise ToolError(f"unknown tool {name!r} (available: {known})")
        return await tool.run(parse_arguments(arguments_json, tool.parameters))

    @staticmethod
    def _failed(call_id: str, name: str, message: str, started: float) -> ToolResult:
        duration = time.monotonic() - started
        log.debug("tool %s failed in %.3f s: %s", name, duration, message)
        return ToolResult(call_id, name, error_output(message), False, duration, message)


# ---- built-in: get_time -----------------------------------------------------------------------

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class GetTimeTool:
    """The current date and time, in the local timezone or a named IANA one."""

    name = "get_time"
    description = "Get the current date and time. Without a timezone it is the user's local time."

    def __init__(
        self, clock: Callable[[], datetime] = _utc_now, local_zone: tzinfo | None = None
    ) -> None:
        # clock returns an aware datetime; local_zone None means the system's own.
        self._clock = clock
        self._local_zone = local_zone
        self.parameters: Mapping[str, Any] = {
            "type": "object",
            "properties": {
                "timezone": {"type": "string", "description": "IANA name, e.g. Europe/Paris"}
            },
        }

    async def run(self, arguments: JsonObject) -> str:
        name = arguments.get("timezone") or None
        now = self._clock().astimezone(_zone(name) if name else self._local_zone)
        return json.dumps(
            {
                "time": now.strftime("%H:%M"),
                "date": now.date().isoformat(),
                # Not strftime("%A"): that follows the user's locale; the model reads English.
                "weekday": _WEEKDAYS[now.weekday()],
                "timezone": name or _zone_name(now),
                "iso": now.isoformat(timespec="seconds"),
            }
        )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(
            f"unknown timezone {name!r}; use an IANA name such as Europe/Paris or America/New_York"
        ) from None


def _zone_name(now: datetime) -> str:
    key = getattr(now.tzinfo, "key", None)
    return key if isinstance(key, str) else (now.tzname() or "local")


BUILTIN_TOOLS: Mapping[str, Callable[[], Tool]] = {"get_time": GetTimeTool}


# ---- command tools ----------------------------------------------------------------------------


class CommandLineTool:
    """A user-configured program; arguments as JSON on stdin, the result on stdout."""

    def __init__(self, spec: CommandTool, *, output_cap: int = DEFAULT_OUTPUT_CAP) -> None:
        self.name = spec.name
        self.description = spec.description
        self.parameters: Mapping[str, Any] = spec.parameters
        self.command: Sequence[str] = tuple(spec.command)
        self.timeout_s = spec.timeout_s
        self.output_cap = output_cap

    async def run(self, arguments: JsonObject) -> str:
        process = await self._start()
        finished = False
        try:
            async with asyncio.timeout(self.timeout_s):
                stdin = json.dumps(arguments, ensure_ascii=False).encode()
                run = await _exchange(process, stdin, self.output_cap)
            finished = True
        except TimeoutError:
            raise ToolError(
                f"timed out after {self.timeout_s:g} s; the program was stopped"
            ) from None
        finally:
            # Timeout, cancellation (barge-in, shutdown) or an error: stop everything it started.
            # Not after a normal exit: a program it launched on purpose (a viewer) may stay.
            if not finished:
                await _stop(process)
        if run.code != 0:
            raise ToolError(_exit_message(run.code, run.stderr_tail))
        return _decode(run.stdout, run.stdout_size, self.output_cap)

    async def _start(self) -> asyncio.subprocess.Process:
        env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
        try:
            return await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group, killed as one
            )
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ToolError(f"cannot run {self.command[0]!r}: {reason}") from None


@dataclass(frozen=True, slots=True)
class _Finished:
    code: int
    stdout: bytes  # at most the cap
    stdout_size: int
    stderr_tail: bytes


async def _exchange(process: asyncio.subprocess.Process, stdin: bytes, cap: int) -> _Finished:
    """Feed stdin and read both outputs at once (a full pipe would stall the program)."""
    async with asyncio.TaskGroup() as group:
        out = group.create_task(_read_capped(_stream(process.stdout), cap))
        err = group.create_task(_read_tail(_stream(process.stderr), _STDERR_TAIL))
        group.create_task(_feed(process, stdin))
    code = await process.wait()
    stdout, size = out.result()
    return _Finished(code, stdout, size, err.result())


def _stream(reader: asyncio.StreamReader | None) -> asyncio.StreamReader:
    assert reader is not None  # all three pipes are requested in _start
    return reader


async def _feed(process: asyncio.subprocess.Process, data: bytes) -> None:
    stdin = process.stdin
    assert stdin is not None
    # A program need not read its arguments; a closed pipe is not an error.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(data)
        await stdin.drain()
        stdin.close()
        await stdin.wait_closed()


async def _read_capped(reader: asyncio.StreamReader, cap: int) -> tuple[bytes, int]:
    """The first ``cap`` bytes and the total size; the rest is drained so the program can finish."""
    kept = bytearray()
    size = 0
    while chunk := await reader.read(_READ_CHUNK):
        size += len(chunk)
        if len(kept) < cap:
            kept += chunk[: cap - len(kept)]
    return bytes(kept), size


async def _read_tail(reader: asyncio.StreamReader, keep: int) -> bytes:
    tail = b""
    while chunk := await reader.read(_READ_CHUNK):
        tail = (tail + chunk)[-keep:]
    return tail


async def _stop(process: asyncio.subprocess.Process) -> None:
    if sys.platform == "win32":
        if process.returncode is None:
            process.kill()
    else:
        # The whole group: a child it spawned would otherwise run on, holding our pipes open.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_REAP_GRACE_S):
            await process.wait()
    _close_pipes(process)


def _close_pipes(process: asyncio.subprocess.Process) -> None:
    """Close our ends of the pipes; their data is no longer wanted.

    Normally they are closed already. But a grandchild that called setsid() escapes killpg and
    may still hold them, and asyncio would then keep them open for as long as it lives (and wait()
    may not return). asyncio has no public way to close a Process's pipes, so this uses its
    transport; should a future asyncio rename it, the pipes merely stay open.
    """
    transport = vars(process).get("_transport")
    if isinstance(transport, asyncio.BaseTransport):
        transport.close()


def _exit_message(code: int, stderr: bytes) -> str:
    lines = stderr.decode(errors="replace").strip().splitlines()
    how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return f"the program {how}: {lines[-1].strip()}" if lines else f"the program {how}"


def _decode(stdout: bytes, size: int, cap: int) -> str:
    # final=False drops a character cut in half at the cap instead of showing garbage.
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(stdout, final=size <= cap)
    text = text.strip()
    if size > cap:
        text += f"\n[output truncated: showing the first {cap} of {size} bytes]"
    return text


# ---- from the config --------------------------------------------------------------------------


def registry_from_settings(settings: Settings) -> ToolRegistry:
    """The built-ins named in ``tools.builtin`` and the ``tools.command`` programs.

    Raises ConfigError for an unknown built-in, a duplicate or invalid name, or parameters that
    do not describe an object.
    """
    tools = [_builtin(name) for name in settings.tools.builtin]
    tools += [_command_tool(i, spec) for i, spec in enumerate(settings.tools.command)]
    seen: set[str] = set()
    for tool in tools:
        if tool.name in seen:
            raise ConfigError(f"tools: two tools are named {tool.name!r}; names must be unique")
        seen.add(tool.name)
    return ToolRegistry(tools)


def _builtin(name: str) -> Tool:
    factory = BUILTIN_TOOLS.get(name)
    if factory is None:
        close = difflib.get_close_matches(name, list(BUILTIN_TOOLS), n=1)
        raise ConfigError(
            f"tools.builtin: unknown built-in tool {name!r} (known: {', '.join(BUILTIN_TOOLS)})",
            hint=f"did you mean {close[0]!r}?" if close else None,
        )
    return factory()


def _command_tool(index: int, spec: CommandTool) -> Tool:
    where = f"tools.command[{index}]"
    if not _TOOL_NAME.match(spec.name):
        raise ConfigError(
            f"{where}.name: {spec.name!r} is not a valid tool name "
            "(letters, digits, _ and -, at most 64)"
        )
    if spec.parameters.get("type") != "object":
        raise ConfigError(f'{where}.parameters: the schema\'s type must be "object"')
    return CommandLineTool(spec)
