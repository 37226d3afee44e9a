"""The ``scripted`` responder: replies read from a TOML or JSON script of steps.

A script is a list of steps; each step says which trigger it answers (``on``), optionally a
word the user's input must contain (``match``), and the reply parts to send::

    repeat = false                      # start over when every step has been used
    fallback = "Nothing is scripted."   # said when no unused step fits

    [[step]]
    on = "speech"            # speech | text | response.create | tool_output | any (default)
    match = "weather"        # case-insensitive substring of the input (see below)
    transcript = "what's the weather in Paris"   # what transcribe() reports for the turn
    [[step.reply]]
    say = "Let me check."    # audio: `wav` (relative to the script) else a tone:
    tone_hz = 440            #   `tone_hz` (default 440) for `ms` (default 60 ms/char, >= 300)
    [[step.reply]]
    call = "get_weather"
    arguments = { city = "Paris" }      # a table, or a JSON object as a string
    [[step.reply]]
    error = "server_error"   # optional `message`, `type`
    [[step.reply]]
    drop = true              # the server drops the call here

``match`` is tested against: the transcript for speech (the step's own ``transcript`` when no
transcript was given), the user text for text, "name: output" lines for tool outputs, and the
response's instructions for a bare response.create.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from voicecli.audio.wav import read_wav_48k
from voicecli.errors import ConfigError, UsageError
from voicecli.server.echo import tone_speech
from voicecli.server.responders import (
    DropCall,
    ErrorReply,
    FunctionCall,
    Pcm,
    Reply,
    ReplyPart,
    ResponseRequest,
    Speech,
    Trigger,
)

DEFAULT_FALLBACK = "Nothing is scripted for this turn."
ANY = "any"
STEP_ON = frozenset({ANY, *(t.value for t in Trigger)})
TOP_KEYS = frozenset({"step", "repeat", "fallback"})
STEP_KEYS = frozenset({"on", "match", "transcript", "reply"})
REPLY_KEYS = {
    "say": frozenset({"say", "wav", "tone_hz", "ms"}),
    "call": frozenset({"call", "arguments"}),
    "error": frozenset({"error", "message", "type"}),
    "drop": frozenset({"drop"}),
}
Kind = type | tuple[type, ...]
_HINT = (
    "each [[step]] has on/match/transcript and [[step.reply]] tables with say, call, error or drop"
)


@dataclass(frozen=True, slots=True)
class Step:
    on: str  # a Trigger value or "any"
    match: str | None
    transcript: str | None
    replies: tuple[ReplyPart, ...]

    def accepts(self, trigger: Trigger) -> bool:
        return self.on in (ANY, trigger.value)

    def matches(self, text: str | None) -> bool:
        if self.match is None:
            return True
        return text is not None and self.match.casefold() in text.casefold()


@dataclass(frozen=True, slots=True)
class Script:
    path: Path
    steps: tuple[Step, ...]
    repeat: bool = False
    fallback: Reply = field(default_factory=lambda: Reply((tone_speech(DEFAULT_FALLBACK),)))


def load_script(path: str | Path) -> Script:
    """Read and validate a script; WAVs are loaded (at 48 kHz) now, so errors show up front.

    Raises ConfigError with a one-line message naming the file, step and reply (1-based).
    """
    path = Path(path)
    data = _parse(path)
    where = _Where(str(path))
    where.unknown_keys(data, TOP_KEYS)
    steps = data.get("step", [])
    if not isinstance(steps, list):
        where.fail("'step' must be a list of tables ([[step]])")
    fallback = where.typed(data, "fallback", str, default=DEFAULT_FALLBACK)
    return Script(
        path=path,
        steps=tuple(
            _step(where.at(f"step {i}"), raw, path.parent) for i, raw in enumerate(steps, 1)
        ),
        repeat=where.typed(data, "repeat", bool, default=False),
        fallback=Reply((tone_speech(fallback),)),
    )


class ScriptedResponder:
    """Answers each trigger with the first unused step (in script order) that fits it."""

    name = "scripted"

    def __init__(self, script: Script) -> None:
        self.script = script
        self._used = [False] * len(script.steps)
        # The step transcribe() announced for the coming speech turn; respond() keeps to it so
        # that the transcript the client saw and the reply it gets come from the same step.
        self._peeked: int | None = None

    async def transcribe(self, audio: Pcm) -> str | None:
        self._peeked = self._find(Trigger.SPEECH, None)
        return None if self._peeked is None else self.script.steps[self._peeked].transcript

    async def respond(self, request: ResponseRequest) -> Reply:
        index = self._select(request)
        if index is None:
            return self.script.fallback
        self._use(index)
        return Reply(self.script.steps[index].replies)

    def _select(self, request: ResponseRequest) -> int | None:
        if request.trigger is Trigger.SPEECH:
            peeked, self._peeked = self._peeked, None
            if peeked is not None and not self._used[peeked]:
                return peeked
        return self._find(request.trigger, _input_text(request))

    def _find(self, trigger: Trigger, text: str | None) -> int | None:
        for index, step in enumerate(self.script.steps):
            if self._used[index] or not step.accepts(trigger):
                continue
            # A speech turn with no transcript is matched against the step's own transcript.
            seen = step.transcript if trigger is Trigger.SPEECH and text is None else text
            if step.matches(seen):
                return index
        return None

    def _use(self, index: int) -> None:
        self._used[index] = True
        if self.script.repeat and all(self._used):
            self._used = [False] * len(self._used)


def _input_text(request: ResponseRequest) -> str | None:
    """What a step's ``match`` is tested against for this request."""
    if request.trigger is Trigger.TOOL_OUTPUT:
        return "\n".join(f"{o.name}: {o.output}" for o in request.tool_outputs)
    if request.trigger is Trigger.RESPONSE_CREATE:
        return request.instructions
    return request.user_text


class _Where:
    """Builds the "file: step N: reply M:" prefix of error messages and raises them."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def at(self, part: str) -> _Where:
        return _Where(f"{self.prefix}: {part}")

    def fail(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prefix}: {message}", hint=_HINT)

    def unknown_keys(self, table: Any, allowed: frozenset[str]) -> None:
        if not isinstance(table, dict):
            self.fail(f"expected a table, got {_kind(table)}")
        for key in table:
            if key not in allowed:
                self.fail(f"unknown key {key!r}")

    def typed(self, table: Mapping[str, Any], key: str, kind: Kind, *, default: Any) -> Any:
        """``table[key]`` checked to be of ``kind``; ``default`` when the key is absent."""
        if key not in table:
            return default
        value = table[key]
        # bool is an int subclass: reject it where a number is wanted.
        wrong_bool = isinstance(value, bool) and kind is not bool
        if wrong_bool or not isinstance(value, kind):
            self.fail(f"{key!r} must be {_kind_name(kind)}, got {_kind(value)}")
        return value


def _parse(path: Path) -> dict[str, Any]:
    where = _Where(str(path))
    loaders: dict[str, Callable[[bytes], Any]] = {
        ".toml": lambda raw: tomllib.loads(raw.decode("utf-8")),
        ".json": json.loads,
    }
    loader = loaders.get(path.suffix.lower())
    if loader is None:
        where.fail("unknown script type; use a .toml or .json file")
    try:
        data = loader(path.read_bytes())
    except FileNotFoundError:
        where.fail("no such file")
    except OSError as exc:
        where.fail(f"cannot read ({exc.strerror})")
    except (ValueError, UnicodeDecodeError) as exc:  # TOMLDecodeError/JSONDecodeError
        where.fail(f"invalid {path.suffix.lower()[1:].upper()}: {exc}")
    if not isinstance(data, dict):
        where.fail(f"expected a table at the top, got {_kind(data)}")
    return data


def _step(where: _Where, raw: Any, base: Path) -> Step:
    where.unknown_keys(raw, STEP_KEYS)
    on = where.typed(raw, "on", str, default=ANY)
    if on not in STEP_ON:
        where.fail(f"'on' must be one of {', '.join(sorted(STEP_ON))}; got {on!r}")
    transcript = where.typed(raw, "transcript", str, default=None)
    if transcript is not None and on not in (ANY, Trigger.SPEECH.value):
        where.fail("'transcript' is only used by steps on speech (or any)")
    replies = raw.get("reply")
    if not isinstance(replies, list) or not replies:
        where.fail("needs at least one [[step.reply]]")
    return Step(
        on=on,
        match=where.typed(raw, "match", str, default=None),
        transcript=transcript,
        replies=tuple(_reply(where.at(f"reply {i}"), r, base) for i, r in enumerate(replies, 1)),
    )


def _reply(where: _Where, raw: Any, base: Path) -> ReplyPart:
    if not isinstance(raw, dict):
        where.fail(f"expected a table, got {_kind(raw)}")
    kinds = [k for k in REPLY_KEYS if k in raw]
    if len(kinds) != 1:
        found = " and ".join(repr(k) for k in kinds) or "none"
        where.fail(f"a reply has exactly one of 'say', 'call', 'error', 'drop'; found {found}")
    where.unknown_keys(raw, REPLY_KEYS[kinds[0]])
    builders: dict[str, Callable[[_Where, dict[str, Any], Path], ReplyPart]] = {
        "say": _say,
        "call": _call,
        "error": _error,
        "drop": _drop,
    }
    return builders[kinds[0]](where, raw, base)


def _say(where: _Where, raw: dict[str, Any], base: Path) -> Speech:
    text: str = where.typed(raw, "say", str, default=None)
    wav: str | None = where.typed(raw, "wav", str, default=None)
    if wav is not None:
        if "tone_hz" in raw or "ms" in raw:
            where.fail("'wav' and 'tone_hz'/'ms' do not go together")
        return Speech(transcript=text, audio=_load_wav(where, base / wav, wav))
    hz = where.typed(raw, "tone_hz", (int, float), default=None)
    if hz is not None and not 20 <= hz <= 20_000:
        where.fail(f"'tone_hz' must be within 20..20000, got {hz}")
    ms = where.typed(raw, "ms", int, default=None)
    if ms is not None and ms <= 0:
        where.fail(f"'ms' must be positive, got {ms}")
    return tone_speech(text, float(hz) if hz is not None else 440.0, ms)


def _load_wav(where: _Where, path: Path, given: str) -> Pcm:
    try:
        return read_wav_48k(path)
    except UsageError as exc:
        where.fail(f"wav {given!r}: {exc.message}")


def _call(where: _Where, raw: dict[str, Any], base: Path) -> FunctionCall:
    name: str = where.typed(raw, "call", str, default=None)
    arguments = raw.get("arguments", {})
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError as exc:
            where.fail(f"'arguments' is not valid JSON: {exc}")
        if not isinstance(parsed, dict):
            where.fail("'arguments' must be a JSON object")
        return FunctionCall(name=name, arguments=arguments)
    if not isinstance(arguments, dict):
        where.fail(f"'arguments' must be a table or a JSON string, got {_kind(arguments)}")
    return FunctionCall(name=name, arguments=json.dumps(arguments))


def _error(where: _Where, raw: dict[str, Any], base: Path) -> ErrorReply:
    code: str = where.typed(raw, "error", str, default=None)
    message: str = where.typed(raw, "message", str, default=f"Scripted error: {code}")
    kind: str = where.typed(raw, "type", str, default="invalid_request_error")
    return ErrorReply(code=code, message=message, type=kind)


def _drop(where: _Where, raw: dict[str, Any], base: Path) -> DropCall:
    if raw["drop"] is not True:
        where.fail("'drop' must be true")
    return DropCall()


_NAMES: dict[type, str] = {
    dict: "a table",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
}


def _kind(value: Any) -> str:
    return "null" if value is None else _NAMES.get(type(value), type(value).__name__)


def _kind_name(kind: Kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_NAMES.get(k, k.__name__) for k in kinds)
