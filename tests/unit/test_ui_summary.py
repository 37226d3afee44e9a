"""voicecli.ui.summary: the exit summary and the `--stats-json` object."""

from __future__ import annotations

import json

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
from voicecli.talk.events import (
    AudioMark,
    CallInfo,
    Ended,
    PlayoutFigures,
    Reconnected,
    Reconnecting,
    TalkEvent,
)
from voicecli.ui.state import DashboardConfig, DashboardState, initial_state, reduce
from voicecli.ui.summary import render_summary, summary


def session(model: str) -> DashboardState:
    call = CallInfo("https://api.openai.com/v1", model, "marin", "rtc_1", "webrtc", False)
    events: list[tuple[float, TalkEvent]] = [(1.0, call)]
    for n, wait in enumerate([0.3, 0.5, 0.4]):  # three spoken turns
        stop = 10.0 * (n + 1)
        events += [
            (stop - 1, SpeechMark(f"u{n}", "started", 0)),
            (stop, SpeechMark(f"u{n}", "stopped", 0)),
            (stop + wait, ResponseStarted(f"r{n}")),
            (stop + wait + 0.2, AudioMark("received", stop + wait + 0.2)),
            (stop + wait + 0.3, AudioMark("played", stop + wait + 0.3)),
            (stop + wait + 0.4, AudioState(f"r{n}", "started")),
            (stop + wait + 0.5, UserText(f"u{n}", f"question {n}", final=True)),
            (stop + wait + 0.6, AssistantText(f"r{n}", "a", f"answer {n}", final=True)),
            (stop + wait + 0.7, ResponseFinished(f"r{n}", "completed", None, USAGE_320)),
        ]
    result = ToolResult("c1", "weather", "{}", ok=False, duration_s=2.0, error="timed out")
    events += [
        (40.0, AudioState("r2", "cleared")),  # the last answer was cut short
        (41.0, ToolCallStarted("c1", "weather", "{}")),
        (43.0, ToolCallFinished(result)),
        (44.0, ServiceErrorEvent("invalid_value", "bad", None)),
        (45.0, Reconnecting("the peer connection failed", 1)),
        (46.0, Reconnected(1.0, "webrtc")),
        (47.0, PlayoutFigures(80.0, 80.0, 3, 20000.0)),
        (50.0, Ended("user")),
    ]
    state = initial_state(0.0, DashboardConfig(prices=PriceTable.load()))
    for at, event in events:
        state = reduce(state, event, at)
    return state


def test_summary_counts_turns_latency_tokens_cost_and_trouble() -> None:
    stats = summary(session("gpt-realtime"), 62.5)
    assert stats["duration_s"] == 62.5
    assert stats["model"] == "gpt-realtime" and stats["end_reason"] == "user"
    assert stats["turns"] == {
        "user": 3,
        "assistant": 3,
        "interrupted": 1,
        "tool_calls": 1,
        "tool_failures": 1,
    }
    latency = stats["latency_ms"]
    assert latency["speech_to_response"] == {"p50": 400.0, "p95": 500.0, "n": 3}
    assert latency["response_to_audio"]["p50"] == 200.0
    assert latency["total"] == {"p50": 700.0, "p95": 800.0, "n": 3}
    assert stats["tokens"] == {
        "input": {"text": 177, "audio": 219, "image": 0},
        "cached": {"text": 0, "audio": 192, "image": 0},
        "output": {"text": 123, "audio": 441},
        "total": 960,
    }
    assert stats["cost_usd"] == round(3 * 0.0106136, 6)
    assert stats["reconnects"] == 1 and stats["underruns"] == 3 and stats["errors"] == 1
    assert json.loads(json.dumps(stats)) == stats  # written verbatim by --stats-json


def test_an_unpriced_model_has_no_cost_but_keeps_its_tokens() -> None:
    stats = summary(session("some-new-model"), 60.0)
    assert stats["cost_usd"] is None and stats["tokens"]["total"] == 960
    assert "cost unknown" in render_summary(stats)


def test_the_text_summary_has_the_figures_on_plain_lines() -> None:
    text = render_summary(summary(session("gpt-realtime"), 62.5))
    assert "\x1b" not in text
    assert "session 1:02 (gpt-realtime) · 3 user turns · 3 replies (1 interrupted)" in text
    assert "1 tool calls" in text
    assert "speech end→response    400 / 500 ms (n=3)" in text
    assert "speech end→played      700 / 800 ms (n=3)" in text
    assert "tokens 396 in (192 cached; audio 219) · 564 out (audio 441) · $0.0318" in text
    assert "reconnects 1 · underruns 3 · errors 1" in text


def test_an_empty_session_summarises_without_figures() -> None:
    stats = summary(initial_state(5.0), 6.0)
    assert stats["turns"]["user"] == 0 and stats["cost_usd"] is None
    assert stats["latency_ms"]["total"] == {"p50": None, "p95": None, "n": 0}
    assert "latency: no measured turns" in render_summary(stats)
