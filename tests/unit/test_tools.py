"""voicecli.realtime.tools: what the model gets back from a call, good or bad, and that tools
declared in the config reach the wire in a shape the service accepts.

Command tools run for real: small Python scripts written into tmp_path, started as
``[sys.executable, script]``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecli.config import CommandTool, Settings
from voicecli.errors import ConfigError
from voicecli.realtime.schema import check_client_event
from voicecli.realtime.tools import (
    CommandLineTool,
    GetTimeTool,
    ToolRegistry,
    ToolResult,
    registry_from_settings,
)

JsonObject = dict[str, Any]

# Saturday 21 November 2026, 13:05:09 UTC.
NOON_ISH = datetime(2026, 11, 21, 13, 5, 9, tzinfo=UTC)


def fixed_clock() -> datetime:
    return NOON_ISH


def error_of(result: ToolResult) -> str:
    """The message the model reads, checked to be the documented {"error": ...} JSON string."""
    assert result.ok is False
    payload = json.loads(result.output)
    assert list(payload) == ["error"]
    assert payload["error"] == result.error
    message: str = payload["error"]
    return message


# ---- get_time ---------------------------------------------------------------------------------


async def run_get_time(arguments: str, local: str = "Asia/Tokyo") -> ToolResult:
    registry = ToolRegistry([GetTimeTool(clock=fixed_clock, local_zone=ZoneInfo(local))])
    return await registry.call("get_time", arguments, "call_1")


async def test_get_time_in_a_named_timezone() -> None:
    result = await run_get_time('{"timezone": "Europe/Paris"}')
    assert result.ok and result.error is None
    assert result.call_id == "call_1" and result.name == "get_time"
    assert json.loads(result.output) == {
        "time": "14:05",
        "date": "2026-11-21",
        "weekday": "Saturday",
        "timezone": "Europe/Paris",
        "iso": "2026-11-21T14:05:09+01:00",
    }


async def test_get_time_crosses_the_date_line() -> None:
    result = await run_get_time('{"timezone": "Pacific/Kiritimati"}')  # UTC+14
    answer = json.loads(result.output)
    assert (answer["date"], answer["weekday"], answer["time"]) == ("2026-11-22", "Sunday", "03:05")


async def test_get_time_defaults_to_the_local_timezone() -> None:
    for arguments in ("{}", ""):  # "" is what some models send for "no arguments"
        answer = json.loads((await run_get_time(arguments, local="Asia/Tokyo")).output)
        assert answer["time"] == "22:05"
        assert answer["timezone"] == "Asia/Tokyo"


async def test_get_time_with_the_system_zone_names_it() -> None:
    registry = ToolRegistry([GetTimeTool(clock=fixed_clock)])
    answer = json.loads((await registry.call("get_time", "{}", "c")).output)
    local = NOON_ISH.astimezone()
    assert answer["time"] == local.strftime("%H:%M")
    assert answer["timezone"]


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime"])
async def test_get_time_unknown_timezone_is_named_in_the_error(zone: str) -> None:
    message = error_of(await run_get_time(json.dumps({"timezone": zone})))
    assert repr(zone) in message
    assert "IANA" in message


# ---- the registry: definitions ----------------------------------------------------------------


def command_spec(name: str, command: list[str], **extra: Any) -> CommandTool:
    return CommandTool.model_validate({"name": name, "command": command, **extra})


def test_definitions_are_the_four_documented_fields_and_pass_the_sdk_schema() -> None:
    weather = command_spec(
        "get_weather",
        ["weather"],
        description="Weather for a city",
        parameters={
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    )
    registry = ToolRegistry([GetTimeTool(), CommandLineTool(weather)])
    definitions = registry.definitions()

    assert [sorted(d) for d in definitions] == [["description", "name", "parameters", "type"]] * 2
    assert definitions[1] == {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": weather.parameters,
    }
    event = {"type": "session.update", "session": {"type": "realtime", "tools": definitions}}
    assert check_client_event(event) is None


def test_the_sdk_check_would_catch_a_chat_completions_style_definition() -> None:
    # Guards the test above: the check it relies on does reject a wrong tool shape.
    wrong = {"type": "function", "function": {"name": "get_time", "parameters": {}}}
    event = {"type": "session.update", "session": {"type": "realtime", "tools": [wrong]}}
    problem = check_client_event(event)
    assert problem is not None and problem.param == "session.tools[0].function"


# ---- the registry: a model's mistakes never raise ---------------------------------------------


class Thermostat:
    """A tool with a schema using each keyword the validator knows."""

    name = "set_temperature"
    description = "Set the thermostat"
    parameters: JsonObject = {
        "type": "object",
        "properties": {
            "room": {"type": "string", "enum": ["kitchen", "bedroom"]},
            "celsius": {"type": "number"},
            "hours": {"type": "integer"},
            "eco": {"type": "boolean"},
            "days": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["room", "celsius"],
        "additionalProperties": False,
    }

    def __init__(self) -> None:
        self.calls: list[JsonObject] = []

    async def run(self, arguments: JsonObject) -> str:
        self.calls.append(arguments)
        return "done"


async def test_valid_arguments_reach_the_tool() -> None:
    tool = Thermostat()
    arguments = {"room": "kitchen", "celsius": 20.5, "hours": 2.0, "eco": True, "days": ["mon"]}
    result = await ToolRegistry([tool]).call("set_temperature", json.dumps(arguments), "c")
    assert (result.ok, result.output) == (True, "done")
    assert tool.calls == [arguments]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"room": "kitchen", "celsius": ', "not valid JSON"),
        ("[1, 2]", "must be a JSON object, got array"),
        ('"kitchen"', "must be a JSON object, got string"),
        ("null", "must be a JSON object, got null"),
        ('{"room": "kitchen"}', "missing required property 'celsius'"),
        ('{"room": "kitchen", "celsius": "20"}', "arguments.celsius: expected number, got string"),
        ('{"room": "attic", "celsius": 20}', 'arguments.room: must be one of "kitchen", "bedroom"'),
        ('{"room": "kitchen", "celsius": 20, "hours": 1.5}', "arguments.hours: expected integer"),
        ('{"room": "kitchen", "celsius": 20, "eco": 1}', "arguments.eco: expected boolean"),
        ('{"room": "kitchen", "celsius": 20, "days": ["mon", 2]}', "arguments.days[1]: expected"),
        ('{"room": "kitchen", "celsius": 20, "fan": 1}', "unexpected property 'fan'"),
    ],
)
async def test_bad_arguments_are_explained_to_the_model(arguments: str, expected: str) -> None:
    tool = Thermostat()
    result = await ToolRegistry([tool]).call("set_temperature", arguments, "call_9")
    assert expected in error_of(result)
    assert result.call_id == "call_9"
    assert tool.calls == []


async def test_all_schema_problems_are_reported_at_once() -> None:
    result = await ToolRegistry([Thermostat()]).call("set_temperature", '{"room": 3}', "c")
    message = error_of(result)
    assert "missing required property 'celsius'" in message
    assert "arguments.room: expected string, got integer" in message


async def test_unknown_tool_lists_the_available_ones() -> None:
    result = await ToolRegistry([Thermostat(), GetTimeTool()]).call("get_weather", "{}", "c")
    assert error_of(result) == "unknown tool 'get_weather' (available: set_temperature, get_time)"


@settings(max_examples=200, deadline=None)
@given(arguments=st.text())
def test_no_argument_text_makes_call_raise(arguments: str) -> None:
    result = asyncio.run(ToolRegistry([Thermostat()]).call("set_temperature", arguments, "c"))
    if result.ok:
        assert result.output == "done"
    else:
        assert json.loads(result.output)["error"]


class Broken:
    name = "broken"
    description = "Always fails"
    parameters: JsonObject = {"type": "object"}

    async def run(self, arguments: JsonObject) -> str:
        raise RuntimeError("disk on fire")


async def test_a_tool_that_raises_becomes_an_error_output() -> None:
    result = await ToolRegistry([Broken()]).call("broken", "{}", "c")
    assert error_of(result) == "tool failed: RuntimeError: disk on fire"
    assert result.duration_s >= 0


def test_duplicate_tools_in_one_registry_are_refused() -> None:
    with pytest.raises(ValueError, match="get_time"):
        ToolRegistry([GetTimeTool(), GetTimeTool()])


# ---- command tools, for real ------------------------------------------------------------------


def script(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return [sys.executable, str(path)]


async def run_command(
    command: list[str], arguments: JsonObject, timeout_s: float = 10.0, cap: int | None = None
) -> ToolResult:
    spec = command_spec("tool", command, timeout_s=timeout_s)
    tool = CommandLineTool(spec) if cap is None else CommandLineTool(spec, output_cap=cap)
    return await ToolRegistry([tool]).call("tool", json.dumps(arguments), "call_x")


ECHO = """
    import sys
    data = sys.stdin.read()
    print("  " + data + "  ")
"""


async def test_command_gets_arguments_on_stdin_and_returns_stdout_stripped(tmp_path: Path) -> None:
    arguments = {"city": "Zürich", "days": [1, 2]}
    result = await run_command(script(tmp_path, "echo", ECHO), arguments)
    assert result.ok
    assert json.loads(result.output) == arguments
    assert result.output == result.output.strip()


async def test_shell_metacharacters_are_passed_literally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    nasty = "$(touch pwned); `touch pwned2` | cat > pwned3 && echo $HOME *"
    argv_echo = """
        import json, sys
        print(json.dumps({"argv": sys.argv[1:], "stdin": json.loads(sys.stdin.read())}))
    """
    command = [*script(tmp_path, "argv", argv_echo), nasty, "*"]
    result = await run_command(command, {"text": nasty})
    assert json.loads(result.output) == {"argv": [nasty, "*"], "stdin": {"text": nasty}}
    assert not files_named(tmp_path, "pwned*")


def files_named(folder: Path, pattern: str) -> list[Path]:
    return list(folder.glob(pattern))


async def test_command_does_not_see_the_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    monkeypatch.setenv("VOICECLI_TOOL_TEST", "visible")
    env = 'import os; print(os.environ.get("OPENAI_API_KEY"), os.environ["VOICECLI_TOOL_TEST"])'
    result = await run_command(script(tmp_path, "env", env), {})
    assert result.output == "None visible"


async def test_non_zero_exit_reports_code_and_last_stderr_line(tmp_path: Path) -> None:
    failing = """
        import sys
        print("partial output")
        sys.stderr.write("warming up\\nerror: disk full\\n")
        sys.exit(3)
    """
    message = error_of(await run_command(script(tmp_path, "fail", failing), {}))
    assert message == "the program exited with code 3: error: disk full"


async def test_non_zero_exit_without_stderr(tmp_path: Path) -> None:
    message = error_of(await run_command(script(tmp_path, "quiet", "raise SystemExit(1)"), {}))
    assert message == "the program exited with code 1"


async def test_a_program_that_ignores_stdin_still_works(tmp_path: Path) -> None:
    result = await run_command(script(tmp_path, "hello", "print('hello')"), {"x": "y" * 500_000})
    assert (result.ok, result.output) == (True, "hello")


async def eventually(condition: Callable[[], bool], within_s: float) -> bool:
    """Poll a condition on another process (nothing to await there); False if it never holds."""
    for _ in range(int(within_s / 0.02)):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


def pid_in(path: Path) -> int | None:
    text = path.read_text() if path.exists() else ""
    return int(text) if text else None


def is_dead(pid: int) -> bool:
    """Gone or a zombie: PID 1 in a container need not reap orphans."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
async def test_timeout_kills_the_program_and_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    sleeper = f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(60)
    """
    started = time.monotonic()
    result = await run_command(script(tmp_path, "sleeper", sleeper), {}, timeout_s=0.5)
    elapsed = time.monotonic() - started

    assert error_of(result) == "timed out after 0.5 s; the program was stopped"
    assert 0.5 <= elapsed < 1.5
    child = pid_in(pid_file)
    assert child is not None
    assert await eventually(lambda: is_dead(child), within_s=1.0)


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
async def test_timeout_holds_even_if_a_child_escapes_the_group_with_our_stdout(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "escaped.pid"
    escaper = f"""
        import subprocess, sys
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
        )
        open({str(pid_file)!r}, "w").write(str(child.pid))
    """
    started = time.monotonic()
    try:
        result = await run_command(script(tmp_path, "escaper", escaper), {}, timeout_s=0.5)
    finally:
        escaped = pid_in(pid_file)
        if escaped is not None:
            os.kill(escaped, signal.SIGKILL)  # ours to clean up: killpg cannot reach it
    assert time.monotonic() - started < 3.0
    assert "timed out after 0.5 s" in error_of(result)


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
async def test_cancelling_a_call_kills_the_program(tmp_path: Path) -> None:
    pid_file = tmp_path / "me.pid"
    sleeper = f"""
        import os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(60)
    """
    call = asyncio.create_task(run_command(script(tmp_path, "s", sleeper), {}, timeout_s=30))
    assert await eventually(lambda: pid_in(pid_file) is not None, within_s=10.0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    pid = pid_in(pid_file)
    assert pid is not None and is_dead(pid)


async def test_huge_output_is_truncated_with_a_note(tmp_path: Path) -> None:
    # é is two bytes: the cap falls in the middle of one, which must not show as garbage.
    chatty = "import sys; sys.stdout.write('a' + 'é' * 1_000_000)"
    result = await run_command(script(tmp_path, "chatty", chatty), {}, cap=1000)
    assert result.ok
    text, note = result.output.split("\n")
    assert text == "a" + "é" * 499
    assert note == "[output truncated: showing the first 1000 of 2000001 bytes]"


async def test_default_cap_is_16_kib(tmp_path: Path) -> None:
    result = await run_command(script(tmp_path, "big", "print('x' * 100_000)"), {})
    assert result.output.startswith("x" * 16384 + "\n[output truncated")


async def test_missing_executable_is_an_error_output(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-tool")
    message = error_of(await run_command([missing, "--flag"], {}))
    assert message == f"cannot run {missing!r}: No such file or directory"


# ---- from the config --------------------------------------------------------------------------


def settings_with(tools: JsonObject) -> Settings:
    return Settings.model_validate({"tools": tools})


def test_default_settings_offer_get_time() -> None:
    registry = registry_from_settings(Settings())
    assert [d["name"] for d in registry.definitions()] == ["get_time"]


async def test_config_command_tools_are_registered_and_run(tmp_path: Path) -> None:
    command = script(tmp_path, "echo", ECHO)
    registry = registry_from_settings(
        settings_with({"builtin": [], "command": [{"name": "echo", "command": command}]})
    )
    assert registry.names == ["echo"]
    result = await registry.call("echo", '{"a": 1}', "c")
    assert json.loads(result.output) == {"a": 1}


def test_unknown_builtin_names_it_and_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        registry_from_settings(settings_with({"builtin": ["get_tiem"]}))
    assert info.value.message == "tools.builtin: unknown built-in tool 'get_tiem' (known: get_time)"
    assert info.value.hint == "did you mean 'get_time'?"
    assert "\n" not in info.value.message


def test_duplicate_names_are_a_config_error() -> None:
    tools = {"builtin": ["get_time"], "command": [{"name": "get_time", "command": ["date"]}]}
    with pytest.raises(ConfigError, match="two tools are named 'get_time'"):
        registry_from_settings(settings_with(tools))


@pytest.mark.parametrize(
    ("tool", "expected"),
    [
        ({"name": "disk free", "command": ["df"]}, r"tools.command\[0\].name: 'disk free'"),
        (
            {"name": "df", "command": ["df"], "parameters": {"type": "string"}},
            r"tools.command\[0\].parameters: the schema's type must be \"object\"",
        ),
    ],
)
def test_tools_the_service_would_refuse_are_config_errors(tool: JsonObject, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        registry_from_settings(settings_with({"builtin": [], "command": [tool]}))
