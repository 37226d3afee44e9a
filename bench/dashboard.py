"""Benchmark the dashboard's pure parts: reduce() per event and render() per frame.

Run: ``.venv/bin/python bench/dashboard.py [--repeats 7]``. No network, no terminal: frames are
rendered into an in-memory Console (colour on, as in a real terminal) inside rich's Screen, the
way Live draws in the alternate screen.

A small session (10 turns) is the baseline; a one-hour-sized one (300 turns: 300 user turns,
300 replies, 30 tool calls) is measured the same way in the same run. The ratio column says how
much the cost grows with the transcript: reduce() should stay flat (a level event does not touch
the transcript; a text delta copies one chunk), render() lays out only the turns that fit.

Each figure is the median over ``--repeats`` runs of the mean time per call within a run.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.screen import Screen

from voicecli.realtime.pricing import PriceTable
from voicecli.realtime.session_events import (
    AssistantText,
    AudioState,
    ResponseFinished,
    ResponseStarted,
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
    Levels,
    PlayoutFigures,
    TalkEvent,
)
from voicecli.ui.dashboard import render
from voicecli.ui.state import DashboardConfig, DashboardState, initial_state, reduce

USAGE: dict[str, Any] = {
    "input_token_details": {
        "text_tokens": 59,
        "audio_tokens": 73,
        "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 64},
    },
    "output_token_details": {"text_tokens": 41, "audio_tokens": 147},
}
REPLY = "Sure. Here is a longer answer of the kind a voice assistant gives, two sentences long."
FRAME_SIZES = ((80, 24), (120, 40))
REFRESH_PER_SECOND = 12


def turn(n: int, at: float) -> list[tuple[float, TalkEvent]]:
    """One spoken turn as the session reports it: marks, deltas word by word, usage."""
    item, rid = f"u{n}", f"r{n}"
    events: list[tuple[float, TalkEvent]] = [
        (at, SpeechMark(item, "started", 0)),
        (at + 2.0, SpeechMark(item, "stopped", 0)),
        (at + 2.4, ResponseStarted(rid)),
        (at + 2.6, AudioMark("received", at + 2.6)),
        (at + 2.7, AudioMark("played", at + 2.7)),
        (at + 2.7, AudioState(rid, "started")),
    ]
    for i, word in enumerate(REPLY.split()):
        events.append((at + 2.8 + i * 0.05, AssistantText(rid, "a", word + " ", final=False)))
    events += [
        (at + 3.5, UserText(item, f"This is question number {n}, asked out loud.", final=True)),
        (at + 4.0, AssistantText(rid, "a", REPLY, final=True)),
        (at + 4.1, ResponseFinished(rid, "completed", None, USAGE)),
    ]
    if n % 10 == 0:
        result = ToolResult(f"c{n}", "get_time", '{"time": "21:14"}', ok=True, duration_s=0.1)
        events += [
            (at + 4.2, ToolCallStarted(f"c{n}", "get_time", '{"tz": "Asia/Tokyo"}')),
            (at + 4.3, ToolCallFinished(result)),
        ]
    events.append((at + 8.0, AudioState(rid, "stopped")))
    for k in range(100):  # ten seconds of levels and playout figures per turn
        events.append((at + k / 10, Levels(-30.0 - k % 20, -40.0)))
        if k % 10 == 0:
            events.append((at + k / 10, PlayoutFigures(80.0, 80.0, 0, k * 100.0)))
            events.append((at + k / 10, NetworkStats(40.0, 2.0, 50 * k, 0)))
    return sorted(events, key=lambda pair: pair[0])


def session(turns: int) -> tuple[DashboardState, list[tuple[float, TalkEvent]]]:
    call = CallInfo("https://api.openai.com/v1", "gpt-realtime", "marin", "rtc_1", "webrtc", False)
    events: list[tuple[float, TalkEvent]] = [(0.5, LinkState("signaling", 0.3)), (1.0, call)]
    for n in range(turns):
        events += turn(n, 10.0 * (n + 1))
    state = initial_state(0.0, DashboardConfig(prices=PriceTable.load()))
    for at, event in events:
        state = reduce(state, event, at)
    return state, events


def per_call_us(action: Callable[[], object], calls: int, repeats: int) -> float:
    means = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(calls):
            action()
        means.append((time.perf_counter_ns() - start) / calls / 1000)
    return statistics.median(means)


def reduce_cases(state: DashboardState, at: float) -> dict[str, Callable[[], object]]:
    streaming = reduce(state, ResponseStarted("r_bench"), at)
    delta = AssistantText("r_bench", "a", "word ", final=False)
    return {
        "reduce: mic/speaker levels": lambda: reduce(state, Levels(-30.0, -40.0), at),
        "reduce: assistant text delta": lambda: reduce(streaming, delta, at),
        "reduce: user placeholder opens": lambda: reduce(state, SpeechMark("x", "started", 0), at),
    }


def one_turn_us(state: DashboardState, at: float, repeats: int) -> float:
    """Mean per event over one whole turn (about 140 events) appended to ``state``."""
    events = turn(10_000, at)

    def fold() -> None:
        s = state
        for when, event in events:
            s = reduce(s, event, when)

    return per_call_us(fold, 5, repeats) / len(events)


def frame_us(state: DashboardState, size: tuple[int, int], at: float, repeats: int) -> float:
    width, height = size
    console = Console(
        file=io.StringIO(),
        width=width,
        height=height,
        force_terminal=True,
        color_system="truecolor",
    )

    def frame() -> None:
        console.file = io.StringIO()
        console.print(Screen(render(state, at)))

    return per_call_us(frame, 20, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    repeats = parser.parse_args().repeats
    small, small_events = session(10)
    large, large_events = session(300)
    at_small, at_large = small_events[-1][0] + 1, large_events[-1][0] + 1
    rows: list[tuple[str, float, float]] = []
    small_cases, large_cases = reduce_cases(small, at_small), reduce_cases(large, at_large)
    for name, action in small_cases.items():
        rows.append(
            (
                name,
                per_call_us(action, 2000, repeats),
                per_call_us(large_cases[name], 2000, repeats),
            )
        )
    rows.append(
        (
            "reduce: a whole turn, per event",
            one_turn_us(small, at_small, repeats),
            one_turn_us(large, at_large, repeats),
        )
    )
    for size in FRAME_SIZES:
        rows.append(
            (
                f"render: one frame {size[0]}x{size[1]}",
                frame_us(small, size, at_small, repeats),
                frame_us(large, size, at_large, repeats),
            )
        )
    print(
        f"dashboard: medians of {repeats} runs; transcript entries: small {len(small.transcript)},"
        f" large {len(large.transcript)}\n"
    )
    print(f"{'':<36}{'10 turns µs':>13}{'300 turns µs':>14}{'ratio':>8}")
    for name, base, big in rows:
        print(f"{name:<36}{base:>13.1f}{big:>14.1f}{big / base:>8.2f}")
    worst = max(big for name, _, big in rows if name.startswith("render"))
    share = worst * REFRESH_PER_SECOND / 1e6
    print(
        f"\nat {REFRESH_PER_SECOND} fps the slowest frame costs {share:.1%} of one core "
        "(Live's refresh thread, off the audio callbacks and the event loop)"
    )


if __name__ == "__main__":
    main()
