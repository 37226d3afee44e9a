"""The live dashboard: ``render(state, now)`` (pure) and ``Dashboard`` (Rich Live around it).

``render`` reads only the immutable DashboardState and ``now``; it returns a renderable that lays
itself out for the console it is printed on: the header, the conversation (the newest lines that
fit, newest at the bottom), the connection/latency/levels/usage panels and the keys line. At 110
columns and more the panels sit side by side; at 80 they stack. Meaning never rests on colour
alone (indicators are words, meters are bars), so ``NO_COLOR`` loses nothing.

``Dashboard`` owns the ``rich.live.Live``. The caller reduces events into it on the event loop
(``update``: cheap, no rendering); Live's own refresh thread pulls ``render(latest state, now)``
12 times a second. Rendering therefore never runs on the audio path nor blocks the loop, and the
refresh thread only reads a reference to an immutable object, so it needs no lock.

It uses the alternate screen: the dashboard owns the whole terminal while it runs, a frame taller
than the terminal is never half-scrolled into the scrollback (which inline Live repaints cannot
undo), and ``stop()`` gives back the screen exactly as it was. What should outlive the session
(the exit summary, the transcript if wanted) is printed plainly after ``stop()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from types import TracebackType
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.live import Live
from rich.segment import Segment
from rich.text import Text

from voicecli.realtime.pricing import TokenCounts
from voicecli.talk.events import TalkEvent
from voicecli.ui.state import (
    STAGES,
    AssistantTurn,
    DashboardState,
    Entry,
    ErrorLine,
    Heard,
    LinkStatus,
    Reply,
    ToolTurn,
    UserTurn,
    clock,
    keys,
    link_stages,
    reduce,
    session_age,
    time_left,
    warnings,
)
from voicecli.ui.summary import summary

REFRESH_PER_SECOND = 10  # the issue asks 10-15 fps; each frame holds the GIL ~2-5 ms
WIDE = 110  # columns from which the panels sit side by side
MIN_CONVERSATION_LINES = 3
COMFORTABLE_CONVERSATION_LINES = 8
METER_FLOOR_DBFS = -60.0
METER_WIDTH = 16
LABEL_WIDTH = 8  # "speaker" and a space
COLUMN_GAP = 2
CLIP = 200  # characters of a tool's arguments or result shown (the state keeps them whole)
NOTICE_S = {"info": 4.0, "warn": 10.0}

_STAGE_NAMES = {
    "ICE gathering": "gathering",
    "signaling": "signaling",
    "ICE connectivity checks": "ICE",
    "DTLS handshake": "DTLS",
    "data channel open": "channel",
    "session.created": "session",
}
_STAGE_HEADERS = {
    "speech_to_response": "speech→resp",
    "response_to_audio": "resp→audio",
    "audio_to_playout": "audio→play",
    "total": "total",
}
_LATENCY_WIDTHS = (12, 11, 11, 7)  # right-aligned under their headers
_REPLY_MARKS = {
    Reply.INTERRUPTED: ("interrupted", "yellow"),
    Reply.FAILED: ("failed", "bold red"),
    Reply.INCOMPLETE: ("incomplete", "yellow"),
}


def render(state: DashboardState, now: float) -> RenderableType:
    """The whole dashboard for ``state`` at ``now`` (pure; lays out at print time)."""
    return _Screen(state, now)


class _Screen:
    """Header, conversation (what fits), panels, keys: sized to the console it renders on."""

    def __init__(self, state: DashboardState, now: float) -> None:
        self.state = state
        self.now = now

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        free = options.reset_height()
        height = options.height or options.max_height
        head = console.render_lines(_header(self.state, self.now), free, pad=False)
        rule = console.render_lines(Text("─" * options.max_width, style="dim"), free, pad=False)
        fixed = len(head) + 2 * len(rule)
        foot = _footer(console, free, self.state, self.now)
        if height - fixed - len(foot) < COMFORTABLE_CONVERSATION_LINES:
            # A small terminal: fold the panels so the conversation keeps some room.
            foot = _footer(console, free, self.state, self.now, compact=True)
        room = max(MIN_CONVERSATION_LINES, height - fixed - len(foot))
        talk = _conversation(console, free, self.state, room)
        talk += [[] for _ in range(room - len(talk))]  # keep the panels at the bottom
        yield from _lines([*head, *rule, *talk, *rule, *foot])


def _lines(lines: Iterable[list[Segment]]) -> RenderResult:
    newline = Segment.line()
    for line in lines:
        yield from line
        yield newline


# ---- the conversation -------------------------------------------------------------------------


def _conversation(
    console: Console, options: ConsoleOptions, state: DashboardState, room: int
) -> list[list[Segment]]:
    """The newest lines that fit in ``room``; only the entries shown are laid out."""
    lines: list[list[Segment]] = []
    for entry in state.transcript.newest_first():
        text = entry_text(entry)
        if text is None:
            continue
        lines[:0] = console.render_lines(text, options, pad=False)
        if len(lines) >= room:
            return lines[-room:]
    return lines


def entry_text(entry: Entry) -> Text | None:
    """One transcript entry as styled text; None for an entry with nothing to show."""
    if isinstance(entry, UserTurn):
        return _user_text(entry)
    if isinstance(entry, AssistantTurn):
        return _assistant_text(entry)
    if isinstance(entry, ToolTurn):
        return _tool_text(entry)
    if isinstance(entry, ErrorLine):
        return Text.assemble(("error: ", "bold red"), (entry.text, "red"))
    return Text(f"── {entry.text} ──", style="dim")


def _user_text(turn: UserTurn) -> Text:
    prefix = ("you: ", "bold cyan")
    if turn.heard is Heard.SPEAKING:
        return Text.assemble(prefix, ("(speaking…)", "dim italic"))
    if turn.heard is Heard.PENDING:
        return Text.assemble(prefix, ("(transcribing…)", "dim italic"))
    if turn.heard is Heard.PARTIAL:
        return Text.assemble(prefix, (turn.text, "italic"))
    return Text.assemble(prefix, turn.text or ("(no words recognised)", "dim italic"))


def _assistant_text(turn: AssistantTurn) -> Text | None:
    text = turn.text
    if not text and turn.status is Reply.DONE:
        return None  # a response that only called tools: its tool lines say it all
    out = Text.assemble(("assistant: ", "bold magenta"), text)
    if turn.status is Reply.STREAMING:
        out.append(" …" if text else "…", style="dim")
    mark = _REPLY_MARKS.get(turn.status)
    if mark is not None:
        label, style = mark
        reason = f": {turn.reason}" if turn.reason else ""
        out.append(f"{' ' if text else ''}[{label}{reason}]", style=style)
    return out


def _tool_text(turn: ToolTurn) -> Text:
    out = Text.assemble(("tool: ", "bold yellow"), f"{turn.name}({_clip(turn.arguments)})")
    result = turn.result
    if result is None:
        out.append(" … running", style="dim")
        return out
    if result.ok:
        out.append(f" → {_clip(result.output)}")
    else:
        out.append(f" ✗ {_clip(result.error or result.output)}", style="red")
    out.append(f" ({result.duration_s * 1000:.0f} ms)", style="dim")
    return out


def _clip(text: str) -> str:
    return text if len(text) <= CLIP else text[: CLIP - 1] + "…"


# ---- header and panels ------------------------------------------------------------------------


def _header(state: DashboardState, now: float) -> Text:
    link = state.link
    out = Text.assemble(("voicecli talk", "bold"), " · ", _status(state))
    call = link.call
    if call is not None:
        out.append(f" · {call.model} · {call.voice}")
        if call.embedded:
            out.append(" · local server", style="yellow")
    out.append(f" · {clock(now - state.started_at)}")
    left = time_left(state, now)
    if left is not None:
        out.append(f" · cap in {clock(left)}")
    return out


def _status(state: DashboardState) -> Text:
    link = state.link
    if link.status is LinkStatus.CONNECTED:
        return Text("connected", style="green")
    if link.status is LinkStatus.RECONNECTING and link.reconnecting is not None:
        attempt = link.reconnecting.attempt
        return Text(f"reconnecting (attempt {attempt}): {link.reconnecting.cause}", style="yellow")
    if link.status is LinkStatus.ENDED:
        return Text(f"ended: {link.ended}", style="dim")
    stage = link.stages[-1].name if link.stages else "starting"
    return Text(f"connecting ({stage})", style="yellow")


def _footer(
    console: Console,
    options: ConsoleOptions,
    state: DashboardState,
    now: float,
    *,
    compact: bool = False,
) -> list[list[Segment]]:
    """Panels as label/value lines, laid out by hand: Rich tables cost ~10x more per frame."""
    width = options.max_width
    left = _connection_rows(state, now, compact) + _level_rows(state, compact)
    right = _latency_rows(state) + _usage_rows(state)
    if width >= WIDE:
        half = (width - COLUMN_GAP) // 2
        panels = _side_by_side(
            _rows(console, options, left, half), _rows(console, options, right, half), half
        )
    else:
        panels = _rows(console, options, left + right, width)
    rest = [("state", _indicators(state)), *_warning_rows(state, now), ("keys", _keys_line(state))]
    return panels + _rows(console, options, rest, width)


Row = tuple[str, Text]


def _rows(
    console: Console, options: ConsoleOptions, rows: list[Row], width: int
) -> list[list[Segment]]:
    """Each value wrapped beside its label (a hanging indent), ``width`` cells per line."""
    value_options = options.update_width(max(1, width - LABEL_WIDTH))
    label_style = console.get_style("bold")
    indent = Segment(" " * LABEL_WIDTH)
    lines: list[list[Segment]] = []
    for label, value in rows:
        wrapped = console.render_lines(value, value_options, pad=False)
        for i, line in enumerate(wrapped):
            head = Segment(label.ljust(LABEL_WIDTH), label_style) if i == 0 else indent
            lines.append([head, *line])
    return lines


def _side_by_side(
    left: list[list[Segment]], right: list[list[Segment]], half: int
) -> list[list[Segment]]:
    gap = Segment(" " * COLUMN_GAP)
    blank: list[Segment] = []
    lines = []
    for i in range(max(len(left), len(right))):
        line = Segment.adjust_line_length(left[i] if i < len(left) else blank, half)
        lines.append([*line, gap, *(right[i] if i < len(right) else blank)])
    return lines


def _connection_rows(state: DashboardState, now: float, compact: bool) -> list[Row]:
    session = _session_line(state, now)
    rows: list[Row] = [("link", _link_line(state)), ("session", session)]
    stages = state.link.stages
    if compact and stages and state.link.status is LinkStatus.CONNECTED:
        setup = link_stages(state)[-1][1]
        session.append(f" · set up in {setup:.2f}s")  # the stage table folded away
    elif stages:
        rows += _stage_rows(state)
    net = _net_line(state)
    rows.append(("net", net))
    playout = state.playout
    if playout is not None and compact:
        net.append(f" · playout {playout.depth_ms:.0f} ms · underruns {playout.underruns}")
    elif playout is not None:
        depth = f"{playout.depth_ms:.0f} ms (target {playout.target_ms:.0f})"
        rows.append(("playout", Text(f"{depth} · underruns {playout.underruns}")))
    return rows


def _link_line(state: DashboardState) -> Text:
    call = state.link.call
    if call is None:
        return Text("–")
    endpoint = call.endpoint.removeprefix("https://").removeprefix("http://")
    return Text(f"{call.transport} · {endpoint} · call {call.call_id or '–'}")


def _session_line(state: DashboardState, now: float) -> Text:
    link = state.link
    age = session_age(state, now)
    out = Text("–" if age is None else clock(age))
    if link.call is not None:
        out.append(f" of {clock(link.call.max_session_s)}")
    out.append(f" · reconnects {link.reconnects}")
    if link.last_cause is not None:
        gap = f", back in {link.last_gap_s:.1f} s" if link.last_gap_s is not None else ""
        out.append(f" (last: {link.last_cause}{gap})", style="yellow")
    return out


def _stage_rows(state: DashboardState) -> list[Row]:
    """Each milestone over the time it was reached (s since the attempt began): no split pairs."""
    stages = link_stages(state)
    names = [_STAGE_NAMES.get(name, name) for name, _ in stages]
    times = [f"{at:.2f}s" for _, at in stages]
    widths = [max(len(name), len(at)) for name, at in zip(names, times, strict=True)]
    top = " ".join(name.ljust(w) for name, w in zip(names, widths, strict=True))
    bottom = " ".join(at.ljust(w) for at, w in zip(times, widths, strict=True))
    return [("stages", Text(top, style="dim", no_wrap=True)), ("", Text(bottom, no_wrap=True))]


def _net_line(state: DashboardState) -> Text:
    stats, recent = state.net.stats, state.net.recent_loss
    if stats is None:
        return Text("–")
    expected = stats.packets_received + max(0, stats.packets_lost)
    loss = max(0, stats.packets_lost) / expected if expected else 0.0
    now_loss = "" if recent is None else f" (now {recent:.1%})"
    return Text(
        f"rtt {_ms(stats.rtt_ms)} · jitter {_ms(stats.jitter_ms)} · loss {loss:.1%}{now_loss}"
    )


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"


def _latency_rows(state: DashboardState) -> list[Row]:
    book = state.latency
    count = max(s.n for s in book.spreads.values())
    head = f"{'n=' + str(count):<5}" + "".join(
        f"{_STAGE_HEADERS[stage]:>{w}}" for stage, w in zip(STAGES, _LATENCY_WIDTHS, strict=True)
    )
    last = book.current.stages_ms() if book.current is not None else {}
    rows: list[Row] = [("latency", Text(head, style="dim", no_wrap=True))]
    rows.append(("", _latency_line("last", [last.get(stage) for stage in STAGES])))
    rows.append(("", _latency_line("p50", [book.spreads[stage].p50 for stage in STAGES])))
    rows.append(("", _latency_line("p95", [book.spreads[stage].p95 for stage in STAGES])))
    return rows


def _latency_line(label: str, values: list[float | None]) -> Text:
    cells = "".join(f"{_num(v):>{w}}" for v, w in zip(values, _LATENCY_WIDTHS, strict=True))
    return Text(f"{label:<5}{cells}", no_wrap=True)


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def _level_rows(state: DashboardState, compact: bool) -> list[Row]:
    levels = state.levels
    mic = None if levels is None else levels.mic_dbfs
    speaker = None if levels is None else levels.speaker_dbfs
    if compact:
        both = Text.assemble(_meter(mic, METER_WIDTH // 2), "  speaker ")
        both.append_text(_meter(speaker, METER_WIDTH // 2))
        return [("mic", both)]
    return [("mic", _meter(mic)), ("speaker", _meter(speaker))]


def _meter(dbfs: float | None, width: int = METER_WIDTH) -> Text:
    if dbfs is None:
        return Text("–")
    span = -METER_FLOOR_DBFS
    level = min(max(dbfs, METER_FLOOR_DBFS), 0.0) if dbfs == dbfs else METER_FLOOR_DBFS
    filled = round((level - METER_FLOOR_DBFS) / span * width)
    style = "green" if dbfs < -12 else "yellow" if dbfs < -3 else "red"
    label = f" {dbfs:.0f} dB" if dbfs > -200 else " silent"
    return Text.assemble(("█" * filled, style), ("░" * (width - filled), "dim"), (label, "dim"))


def _indicators(state: DashboardState) -> Text:
    c = state.controls
    words: list[tuple[str, str]] = []
    if c.muted:
        words.append(("MUTED", "bold red"))
    if c.vad == "off":
        words.append(("push-to-talk: talking" if c.talking else "push-to-talk", "cyan"))
    else:
        words.append((f"{c.vad} VAD", "dim"))
    if c.duplex == "half":
        words.append(("half duplex: mic gated" if c.gate_closed else "half duplex", "yellow"))
    if c.assistant_speaking:
        words.append(("assistant speaking", "magenta"))
    out = Text()
    for i, (word, style) in enumerate(words):
        out.append(" · " if i else "")
        out.append(word, style=style)
    return out


def _usage_rows(state: DashboardState) -> list[Row]:
    usage = state.usage
    t = usage.tokens
    at_least = "≥" if usage.without_usage else ""  # some responses came without usage
    image = f" · image {t.image_in:,}" if t.image_in else ""
    inputs = f"{at_least}{t.input:,} tokens: text {t.text_in:,} · audio {t.audio_in:,}{image}"
    outputs = f"{at_least}{t.output:,} tokens: text {t.text_out:,} · audio {t.audio_out:,}"
    if usage.total_cost is not None:
        cost = Text(f"{at_least}${usage.total_cost:.4f}")
    else:
        cost = Text("$ unknown (no price for this model)", style="dim")
    cost.append_text(_last_turn(usage.last, usage.last_cost))
    return [
        ("input", Text(f"{inputs} · cached {t.cached:,}")),
        ("output", Text(outputs)),
        ("cost", cost),
    ]


def _last_turn(last: TokenCounts | None, cost: Decimal | None) -> Text:
    if last is None:
        return Text()
    price = "" if cost is None else f"${cost:.4f} "
    return Text(f" · last turn {price}({last.input:,} in, {last.output:,} out)")


def _warning_rows(state: DashboardState, now: float) -> list[Row]:
    rows = [("!", Text(warning.text, style="bold yellow")) for warning in warnings(state, now)]
    notice = state.notice
    if notice is not None and now - state.notice_at < NOTICE_S.get(notice.level, 4.0):
        rows.append(("›", Text(notice.text, style="yellow" if notice.level == "warn" else "")))
    return rows


def _keys_line(state: DashboardState) -> Text:
    out = Text()
    for i, (key, action) in enumerate(keys(state)):
        out.append(" · " if i else "")
        out.append(key, style="reverse")
        out.append(f" {action}" if action else " —", style="" if action else "dim")
    return out


# ---- the live display -------------------------------------------------------------------------


class Dashboard:
    """Reduce events on the loop (``update``), render in Live's refresh thread."""

    def __init__(
        self,
        state: DashboardState,
        *,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
        screen: bool = True,
        refresh_per_second: float = REFRESH_PER_SECOND,
    ) -> None:
        self._state = state
        self._clock = clock
        self._live = Live(
            console=console,
            screen=screen,
            refresh_per_second=refresh_per_second,
            get_renderable=self._renderable,
            transient=not screen,
        )

    @property
    def state(self) -> DashboardState:
        return self._state

    def update(self, event: TalkEvent, now: float) -> None:
        """Fold one event in; cheap (no rendering), call it on the event loop."""
        self._state = reduce(self._state, event, now)

    def start(self) -> None:
        self._live.start()

    def stop(self) -> None:
        """Stop refreshing and give the terminal back (main screen, cursor shown)."""
        self._live.stop()

    def close(self, now: float) -> dict[str, Any]:
        """Stop drawing and restore the screen; returns the session summary (``summary()``)."""
        self.stop()
        return summary(self._state, now)

    def __enter__(self) -> Dashboard:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _renderable(self) -> RenderableType:
        # Runs in Live's refresh thread: one read of the latest immutable state.
        return render(self._state, self._clock())
