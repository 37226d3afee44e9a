"""The exit summary: one JSON-ready dict (``--stats-json`` writes it verbatim) and its text form."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from voicecli.ui.state import (
    STAGES,
    AssistantTurn,
    DashboardState,
    Reply,
    ToolTurn,
    UserTurn,
    clock,
)

_STAGE_LABELS = {
    "speech_to_response": "speech end→response",
    "response_to_audio": "response→first audio",
    "audio_to_playout": "first audio→played",
    "total": "speech end→played",
}


def summary(state: DashboardState, now: float) -> dict[str, Any]:
    """The session in numbers, at ``now`` (time.monotonic()). Every value is JSON-serialisable.

    Keys:
      duration_s: float, seconds from the start of talk to ``now``.
      model: str | None, the model of the (last) call.
      end_reason: str | None, what ended the session ("user" or a fatal cause), if it ended.
      turns: {user, assistant, interrupted, tool_calls, tool_failures}: user turns (spoken or
        typed), assistant replies with text, of which interrupted (cancelled or cut off by a
        barge-in), tool calls made, of which failed.
      latency_ms: {speech_to_response, response_to_audio, audio_to_playout, total}: each
        {p50, p95, n}, milliseconds (nearest-rank percentiles, null without samples). The
        stages: end of user speech → response.created → first audio packet → first sample
        played; total = end of speech → first sample played.
      tokens: {input: {text, audio, image}, cached: {text, audio, image},
        output: {text, audio}, total}. Input counts include their cached part.
      responses: int, responses finished; responses_without_usage: int (when > 0 the token
        counts and cost are lower bounds).
      cost_usd: float | None, the responses' cost at the model's prices (rounded to 1e-6
        dollars); None when the model or one kind of usage has no known price. Input
        transcription is not included (its usage does not reach the dashboard).
      reconnects: int, successful reconnects.
      underruns: int, playout underruns (the latest figure from the playout buffer).
      errors: int, service errors and local error notices.
    """
    return {
        "duration_s": round(max(0.0, now - state.started_at), 3),
        "model": None if state.link.call is None else state.link.call.model,
        "end_reason": state.link.ended,
        "turns": _turns(state),
        "latency_ms": _latency(state),
        "tokens": _tokens(state),
        "responses": state.usage.responses,
        "responses_without_usage": state.usage.without_usage,
        "cost_usd": _dollars(state.usage.total_cost),
        "reconnects": state.link.reconnects,
        "underruns": 0 if state.playout is None else state.playout.underruns,
        "errors": state.errors,
    }


def _dollars(amount: Decimal | None) -> float | None:
    return None if amount is None else round(float(amount), 6)


def _turns(state: DashboardState) -> dict[str, int]:
    counts = dict.fromkeys(("user", "assistant", "interrupted", "tool_calls", "tool_failures"), 0)
    for entry in state.transcript:
        if isinstance(entry, UserTurn):
            counts["user"] += 1
        elif isinstance(entry, AssistantTurn) and (entry.text or entry.status is not Reply.DONE):
            counts["assistant"] += 1
            counts["interrupted"] += entry.status is Reply.INTERRUPTED
        elif isinstance(entry, ToolTurn):
            counts["tool_calls"] += 1
            counts["tool_failures"] += entry.result is not None and not entry.result.ok
    return counts


def _latency(state: DashboardState) -> dict[str, dict[str, float | int | None]]:
    spreads = state.latency.spreads
    return {
        stage: {
            "p50": _round(spreads[stage].p50),
            "p95": _round(spreads[stage].p95),
            "n": spreads[stage].n,
        }
        for stage in STAGES
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _tokens(state: DashboardState) -> dict[str, Any]:
    t = state.usage.tokens
    return {
        "input": {"text": t.text_in, "audio": t.audio_in, "image": t.image_in},
        "cached": {"text": t.cached_text, "audio": t.cached_audio, "image": t.cached_image},
        "output": {"text": t.text_out, "audio": t.audio_out},
        "total": t.total,
    }


def render_summary(stats: Mapping[str, Any]) -> str:
    """Plain lines for stderr at exit (no colour, no escape codes)."""
    turns = stats["turns"]
    lines = [
        f"session {clock(stats['duration_s'])}"
        + (f" ({stats['model']})" if stats["model"] else "")
        + f" · {turns['user']} user turns · {turns['assistant']} replies"
        + f" ({turns['interrupted']} interrupted) · {turns['tool_calls']} tool calls",
        *_latency_lines(stats["latency_ms"]),
        _token_line(stats),
        f"reconnects {stats['reconnects']} · underruns {stats['underruns']}"
        f" · errors {stats['errors']}",
    ]
    return "\n".join(lines)


def _latency_lines(latency: Mapping[str, Mapping[str, Any]]) -> list[str]:
    if not any(spread["n"] for spread in latency.values()):
        return ["latency: no measured turns"]
    lines = ["latency p50 / p95:"]
    for stage in STAGES:
        spread = latency[stage]
        if spread["n"]:
            lines.append(
                f"  {_STAGE_LABELS[stage]:<22} {spread['p50']:.0f} / {spread['p95']:.0f} ms"
                f" (n={spread['n']})"
            )
    return lines


def _token_line(stats: Mapping[str, Any]) -> str:
    tokens = stats["tokens"]
    inputs = sum(tokens["input"].values())
    cached = sum(tokens["cached"].values())
    outputs = sum(tokens["output"].values())
    lower = "≥ " if stats["responses_without_usage"] else ""
    cost = stats["cost_usd"]
    price = "cost unknown (no price for this model)" if cost is None else f"${cost:.4f}"
    return (
        f"tokens {lower}{inputs:,} in ({cached:,} cached; audio {tokens['input']['audio']:,})"
        f" · {lower}{outputs:,} out (audio {tokens['output']['audio']:,}) · {price}"
    )
