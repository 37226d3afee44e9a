"""voicecli.ui.dashboard: what the dashboard shows, as plain text at fixed terminal sizes.

Content is asserted (turns, stage times, latency, meters, indicators, keys), never escape codes;
the one exception is NO_COLOR, whose whole point is which codes are absent.
"""

from __future__ import annotations

import io
import re
import time

import pytest
from rich.cells import cell_len
from rich.console import Console

from tests.unit.samples import USAGE_320
from voicecli.realtime.pricing import PriceTable
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
from voicecli.realtime.transport import LinkState, NetworkStats
from voicecli.talk.events import (
    AudioMark,
    CallInfo,
    Controls,
    Levels,
    Notice,
    PlayoutFigures,
    Reconnecting,
    TalkEvent,
)
from voicecli.ui.dashboard import Dashboard, render
from voicecli.ui.state import DashboardConfig, DashboardState, initial_state, reduce

CALL = CallInfo("https://api.openai.com/v1", "gpt-realtime", "marin", "rtc_abc123", "webrtc", False)
TOOL = ToolResult("c1", "get_time", '{"time": "21:14"}', ok=True, duration_s=0.12)

SESSION: list[tuple[float, TalkEvent]] = [
    (0.3, LinkState("signaling", 0.31)),
    (0.5, LinkState("ICE connectivity checks", 0.52)),
    (0.6, LinkState("DTLS handshake", 0.6)),
    (0.7, LinkState("data channel open", 0.71)),
    (0.8, LinkState("session.created", 0.8)),
    (1.0, CALL),
    (2.0, SpeechMark("u1", "started", 0)),
    (4.0, SpeechMark("u1", "stopped", 2000)),
    (4.41, ResponseStarted("r1")),
    (4.5, ToolCallStarted("c1", "get_time", '{"tz": "Asia/Tokyo"}')),
    (4.62, ToolCallFinished(TOOL)),
    (4.7, ResponseFinished("r1", "completed", None, USAGE_320)),
    (4.8, ResponseStarted("r2")),
    (4.9, AssistantText("r2", "a2", "It is nine in the evening in Tokyo.", final=True)),
    (5.0, UserText("u1", "What time is it in Tokyo?", final=True)),
    (5.2, AudioMark("received", 5.2)),
    (5.33, AudioMark("played", 5.33)),
    (5.4, AudioState("r2", "started")),
    (5.5, ResponseFinished("r2", "completed", None, USAGE_320)),
    (6.0, ServiceErrorEvent("invalid_value", "Invalid 'voice'", None)),
    (6.1, Levels(-32.0, -45.0)),
    (6.1, PlayoutFigures(120.0, 100.0, 2, 4000.0)),
    (6.2, NetworkStats(42.0, 3.1, 1000, 2)),
    (6.3, Controls(True, "off", "half", False, True, True)),
]


def state_after(events: list[tuple[float, TalkEvent]]) -> DashboardState:
    state = initial_state(0.0, DashboardConfig(prices=PriceTable.load()))
    for at, event in events:
        state = reduce(state, event, at)
    return state


def screen(state: DashboardState, width: int, height: int = 40, now: float = 10.0) -> str:
    console = Console(width=width, height=height, record=True, force_terminal=False)
    console.print(render(state, now))
    return console.export_text()


@pytest.mark.parametrize("width", [80, 120])
def test_the_conversation_shows_turns_tools_and_errors_in_order(width: int) -> None:
    text = screen(state_after(SESSION), width)
    you = text.index("you: What time is it in Tokyo?")
    tool = text.index('tool: get_time({"tz": "Asia/Tokyo"}) → {"time": "21:14"} (120 ms)')
    assistant = text.index("assistant: It is nine in the evening in Tokyo.")
    error = text.index("error: invalid_value: Invalid 'voice'")
    assert you < tool < assistant < error


@pytest.mark.parametrize("width", [80, 120])
def test_the_panels_show_link_stages_latency_levels_usage_and_keys(width: int) -> None:
    text = " ".join(screen(state_after(SESSION), width).split())  # wrapping moves words only
    assert "connected · gpt-realtime · marin" in text
    assert "cap in 59:51" in text  # connected at 1.0 s, now 10.0 s
    assert "call rtc_abc123" in text and "webrtc" in text
    assert re.search(r"signaling\s+ICE\s+DTLS\s+channel\s+session\s+connected", text)
    # The attempt began at -0.01 s (signaling, 0.31 s in, reported at 0.3); CallInfo at 1.0.
    assert re.search(r"0\.31s\s+0\.52s\s+0\.60s\s+0\.71s\s+0\.80s\s+1\.01s", text)
    assert "rtt 42 ms · jitter 3 ms · loss 0.2%" in text
    assert "120 ms (target 100) · underruns 2" in text
    assert "0:09 of 1:00:00 · reconnects 0" in text
    # speech end 4.0 → created 4.41 → received 5.2 → played 5.33 (the tool call included).
    assert re.search(r"last\s+410\s+790\s+130\s+1330", text)
    assert re.search(r"p50\s+410\s+790\s+130\s+1330", text)
    assert "MUTED" in text and "push-to-talk" in text and "mic gated" in text
    assert "assistant speaking" in text
    assert "264 tokens: text 118 · audio 146 · cached 128" in text
    assert "376 tokens: text 82 · audio 294" in text
    assert "$0.0212 · last turn $0.0106 (132 in, 188 out)" in text
    assert "space talk · m unmute · Esc interrupt · q quit" in text


def test_meters_are_bars_that_grow_with_the_level() -> None:
    quiet = screen(reduce(state_after(SESSION), Levels(-54.0, -60.0), 7.0), 80)
    loud = screen(reduce(state_after(SESSION), Levels(-6.0, -30.0), 7.0), 80)

    def bar(text: str, label: str) -> int:
        line = next(line for line in text.splitlines() if line.startswith(label))
        return line.count("█")

    assert bar(quiet, "mic") < bar(loud, "mic")
    assert bar(quiet, "speaker") == 0 < bar(loud, "speaker")
    assert "-6 dB" in loud and "-54 dB" in quiet


def test_no_line_is_wider_than_80_columns_even_with_long_text() -> None:
    long_reply = AssistantText("r9", "a9", "word " * 120, final=True)
    state = reduce(reduce(state_after(SESSION), ResponseStarted("r9"), 7.0), long_reply, 7.1)
    state = reduce(state, Reconnecting("no audio from api.openai.com for 5 s " * 3, 2), 8.0)
    text = screen(state, 80, height=60)
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    assert "reconnecting (attempt 2)" in text


def test_a_long_conversation_scrolls_newest_at_the_bottom_within_the_screen() -> None:
    events = list(SESSION)
    for n in range(300):
        at = 10.0 + n
        events += [
            (at, UserText(f"typed{n}", f"question number {n}", final=True)),
            (at + 0.1, ResponseStarted(f"rr{n}")),
            (at + 0.2, AssistantText(f"rr{n}", "a", f"answer number {n}", final=True)),
            (at + 0.3, ResponseFinished(f"rr{n}", "completed", None, None)),
        ]
    state = state_after(events)
    assert len(state.transcript) > 600  # nothing dropped from memory
    lines = screen(state, 80, height=24, now=400.0).splitlines()
    assert len(lines) == 24
    assert "answer number 299" in "\n".join(lines)
    assert "question number 200" not in "\n".join(lines)
    newest = max(i for i, line in enumerate(lines) if "answer number 299" in line)
    older = max(i for i, line in enumerate(lines) if "answer number 298" in line)
    assert older < newest
    assert lines[-1].startswith("keys")


def test_a_small_terminal_folds_the_panels_but_keeps_turns_figures_and_keys() -> None:
    lines = screen(state_after(SESSION), 80, height=24).splitlines()
    assert len(lines) == 24
    text = "\n".join(lines)
    conversation = [line for line in lines if line.startswith(("you:", "tool:", "assistant:"))]
    assert len(conversation) == 3 and "error: invalid_value" in text
    assert "set up in 1.01s" in text and "channel" not in text  # stage table folded
    assert "playout 120 ms · underruns 2" in text and "last turn $0.0106" in text
    assert lines[-1].startswith("keys")
    roomy = screen(state_after(SESSION), 80, height=40)
    assert "channel" in roomy and "set up in" not in roomy


def test_warnings_and_fresh_notices_are_shown() -> None:
    state = state_after([*SESSION, (7.0, Notice("info", "muted"))])
    for at in range(70, 140):
        state = reduce(state, Levels(float("-inf"), -60.0), at / 10)
    muted_off = reduce(state, Controls(False, "server", "full", False, False, False), 14.0)
    for at in range(141, 210):
        muted_off = reduce(muted_off, Levels(float("-inf"), -60.0), at / 10)
    assert re.search(r"›\s+muted", screen(state, 80, now=8.0))
    assert not re.search(r"›\s+muted", screen(state, 80, now=20.0))  # notices fade
    assert re.search(r"!\s+no sound from the microphone", screen(muted_off, 80, now=21.0))
    assert "silent" in screen(muted_off, 80, now=21.0)  # the meter of digital silence


def test_before_connecting_the_header_says_so() -> None:
    state = state_after([(0.3, LinkState("signaling", 0.3))])
    text = screen(state, 80, now=0.4)
    assert "connecting (signaling)" in text


def test_no_color_leaves_out_colour_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    colour = re.compile(r"\x1b\[[0-9;]*(?:3[0-9]|9[0-7]|4[0-9]|10[0-7])[0-9;]*m")

    def ansi() -> str:
        out = io.StringIO()
        console = Console(
            file=out, width=80, height=40, force_terminal=True, color_system="truecolor"
        )
        console.print(render(state_after(SESSION), 10.0))
        return out.getvalue()

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert colour.search(ansi())  # the control: colour is there without NO_COLOR
    monkeypatch.setenv("NO_COLOR", "1")
    plain = ansi()
    assert not colour.search(plain)
    assert "MUTED" in plain and "█" in plain  # meaning survives without colour


def test_dashboard_uses_the_alternate_screen_and_restores_it() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, height=24, force_terminal=True, color_system=None)
    dashboard = Dashboard(initial_state(time.monotonic()), console=console, refresh_per_second=50)
    dashboard.start()
    try:
        dashboard.update(UserText("t1", "hello from the test", final=True), time.monotonic())
        deadline = time.monotonic() + 5.0
        while "hello from the test" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)  # Live's refresh thread renders the latest state
    finally:
        stats = dashboard.close(time.monotonic())
    assert stats["turns"]["user"] == 1  # close() hands back the summary
    written = out.getvalue()
    assert "you: hello from the test" in written
    assert written.index("\x1b[?1049h") < written.index("hello") < written.rindex("\x1b[?1049l")
    assert written.rstrip().endswith("\x1b[?25h") or "\x1b[?25h" in written[-40:]  # cursor back
