"""voicecli.ui.plain: the lines `voicecli talk --plain` (or a pipe) prints, in speech order."""

from __future__ import annotations

import io

from voicecli.realtime.session_events import (
    AssistantText,
    AudioState,
    ResponseFinished,
    ResponseStarted,
    ServiceErrorEvent,
    SpeechMark,
    ToolCallFinished,
    ToolCallStarted,
    UserText,
)
from voicecli.realtime.tools import ToolResult
from voicecli.talk.events import Levels, Notice, Reconnecting, TalkEvent
from voicecli.ui.plain import PlainPrinter
from voicecli.ui.state import initial_state


class FlushCounting(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def printer(wait_s: float = 3.0) -> tuple[PlainPrinter, FlushCounting]:
    out = FlushCounting()
    return PlainPrinter(out, initial_state(0.0), transcript_wait_s=wait_s), out


def feed(p: PlainPrinter, events: list[tuple[float, TalkEvent]]) -> None:
    for at, event in events:
        p.update(event, at)


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def reply(response: str, start: float, text: str) -> list[tuple[float, TalkEvent]]:
    return [
        (start, ResponseStarted(response)),
        (start + 0.1, AssistantText(response, "a", text[:4], final=False)),
        (start + 0.2, AssistantText(response, "a", text, final=True)),
        (start + 0.3, ResponseFinished(response, "completed", None, None)),
    ]


def test_a_spoken_turn_prints_two_complete_lines_each_flushed() -> None:
    p, out = printer()
    feed(p, [(1.0, SpeechMark("u1", "started", 0)), (2.0, SpeechMark("u1", "stopped", 900))])
    feed(p, [(2.2, UserText("u1", "What time ", final=False))])
    assert lines(out) == []  # nothing half-done is printed
    feed(p, [(2.3, UserText("u1", "What time is it?", final=True)), *reply("r1", 2.5, "Nine.")])
    assert lines(out) == ["you: What time is it?", "assistant: Nine."]
    assert out.flushes == 2


def test_a_late_transcript_still_prints_before_the_reply() -> None:
    p, out = printer()
    feed(p, [(1.0, SpeechMark("u1", "started", 0)), (2.0, SpeechMark("u1", "stopped", 900))])
    feed(p, reply("r1", 2.3, "Here is a joke."))
    assert lines(out) == []  # the reply waits for the user's words
    feed(p, [(3.0, UserText("u1", "Tell me a joke.", final=True))])
    assert lines(out) == ["you: Tell me a joke.", "assistant: Here is a joke."]


def test_a_transcript_that_never_comes_does_not_hold_the_reply_forever() -> None:
    p, out = printer(wait_s=3.0)
    feed(p, [(1.0, SpeechMark("u1", "started", 0)), (2.0, SpeechMark("u1", "stopped", 900))])
    feed(p, reply("r1", 2.3, "Sure."))
    feed(p, [(4.0, Levels(-40.0, -30.0))])
    assert lines(out) == []
    feed(p, [(5.7, Levels(-40.0, -30.0))])  # 3 s after the reply completed
    assert lines(out) == ["you: (no transcript yet)", "assistant: Sure."]
    feed(p, [(9.0, UserText("u1", "Say something.", final=True))])
    assert lines(out)[-1] == "you (late): Say something."


def test_tool_calls_errors_links_and_notices_have_their_own_lines() -> None:
    p, out = printer()
    result = ToolResult("c1", "get_time", '{"time": "21:14"}', ok=True, duration_s=0.12)
    failed = ToolResult("c2", "weather", "{}", ok=False, duration_s=2.0, error="timed out")
    feed(
        p,
        [
            (1.0, ResponseStarted("r1")),
            (1.1, ToolCallStarted("c1", "get_time", '{"tz": "Asia/Tokyo"}')),
            (1.2, ToolCallStarted("c2", "weather", '{"city":\n"Oslo"}')),
            (1.3, ResponseFinished("r1", "completed", None, None)),
            (1.4, ToolCallFinished(result)),
            (3.2, ToolCallFinished(failed)),
            (3.5, ServiceErrorEvent("invalid_value", "Invalid 'voice'", None)),
            (3.6, Notice("info", "muted")),
            (4.0, Reconnecting("the peer connection failed", 1)),
        ],
    )
    assert lines(out) == [
        'tool: get_time({"tz": "Asia/Tokyo"}) → {"time": "21:14"} (120 ms)',
        'tool: weather({"city":\\n"Oslo"}) ✗ timed out (2000 ms)',
        "error: invalid_value: Invalid 'voice'",
        "notice: muted",
        "link: link lost (the peer connection failed); reconnecting, attempt 1",
    ]


def test_an_interrupted_reply_says_so() -> None:
    p, out = printer()
    feed(
        p,
        [
            (1.0, ResponseStarted("r1")),
            (1.1, AudioState("r1", "started")),
            (1.2, AssistantText("r1", "a", "Once upon", final=False)),
            (1.5, AudioState("r1", "cleared")),
            (1.6, ResponseFinished("r1", "cancelled", "turn_detected", None)),
        ],
    )
    # Printed once the audio is cleared: what the user heard is settled then.
    assert lines(out) == ["assistant: Once upon [interrupted]"]
    feed(
        p,
        [
            (2.0, ResponseStarted("r2")),
            (2.1, AssistantText("r2", "a", "Let me", final=False)),
            (2.2, ResponseFinished("r2", "cancelled", "client_cancelled", None)),
        ],
    )
    assert lines(out)[-1] == "assistant: Let me [interrupted: client_cancelled]"


def test_a_silent_mic_warning_prints_once_while_it_lasts() -> None:
    p, out = printer()
    feed(p, [(i / 10, Levels(float("-inf"), -60.0)) for i in range(90)])
    warnings = [line for line in lines(out) if line.startswith("warning: no sound")]
    assert len(warnings) == 1


def test_close_prints_what_was_still_open() -> None:
    p, out = printer()
    feed(
        p,
        [
            (1.0, SpeechMark("u1", "started", 0)),
            (2.0, ResponseStarted("r1")),
            (2.1, AssistantText("r1", "a", "Half a sen", final=False)),
        ],
    )
    stats = p.close(3.0)
    assert lines(out) == ["you: (no transcript)", "assistant: Half a sen [cut off]"]
    assert stats["duration_s"] == 3.0 and stats["turns"]["user"] == 1


def test_secrets_in_lines_are_masked() -> None:
    p, out = printer()
    feed(p, [(1.0, Notice("warn", "key sk-proj-abcdefghijklmnop1234 was rejected"))])
    assert lines(out) == ["warning: key sk-…1234 was rejected"]
