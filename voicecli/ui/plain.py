"""``--plain`` and non-TTY output: completed lines only, in speech order, one flush per line.

The same reducer as the dashboard decides what a line is, so both agree on order and content.
Lines (each one line; newlines inside a text are written as ``\\n``):

    you: What time is it in Tokyo?
    assistant: It is nine in the evening. [interrupted]
    tool: get_time({"tz":"Asia/Tokyo"}) → {"time":"21:14"} (120 ms)
    error: invalid_value: …
    link: link lost (no audio for 5 s); reconnecting, attempt 1
    notice: muted            (warning: …, for warn-level notices and dashboard warnings)

A user line is printed when its transcript is final; the lines after it wait for it, so speech
order holds even when the transcription arrives after the reply. A transcript may also never
come (transcription off, or dropped by the service), so the wait is bounded: once the line after
a pending user turn has been complete for ``transcript_wait_s``, the user line is printed as
``you: (no transcript yet)`` and the rest follows. If the transcript arrives after all, it is
printed then as ``you (late): …``. The wait is checked on every event (level events come about
ten times a second while talk runs). ``close(now)`` prints what is still open (``[cut off]``,
``(no transcript)``) and returns the summary, like ``Dashboard.close``.
"""

from __future__ import annotations

from typing import Any, TextIO

from voicecli.talk.events import Notice, TalkEvent
from voicecli.ui.state import (
    AssistantTurn,
    DashboardState,
    Entry,
    ErrorLine,
    Heard,
    LinkMark,
    Reply,
    ToolTurn,
    UserTurn,
    reduce,
    warnings,
)
from voicecli.ui.summary import summary

TRANSCRIPT_WAIT_S = 3.0


class PlainPrinter:
    """Feeds events through the reducer and writes each entry once it is complete."""

    def __init__(
        self, stream: TextIO, state: DashboardState, *, transcript_wait_s: float = TRANSCRIPT_WAIT_S
    ) -> None:
        self._stream = stream
        self._state = state
        self._wait_s = transcript_wait_s
        self._next = 0  # the first entry not printed yet
        self._blocked_since: float | None = None
        self._late: set[int] = set()  # user turns printed before their transcript came
        self._alerts: frozenset[str] = frozenset()

    @property
    def state(self) -> DashboardState:
        return self._state

    def update(self, event: TalkEvent, now: float) -> None:
        """Fold one event in and print whatever it completed."""
        self._state = reduce(self._state, event, now)
        notice = self._state.notice
        if isinstance(event, Notice) and notice is not None and event.level != "error":
            # Error notices are transcript lines; the others print at once (redacted).
            self._write(f"{'warning' if notice.level == 'warn' else 'notice'}: {notice.text}")
        self._print_late()
        self._advance(now)
        self._print_alerts(now)

    def close(self, now: float) -> dict[str, Any]:
        """Print whatever is left, as it stands; returns the session summary (``summary()``)."""
        self._flush_all()
        return summary(self._state, now)

    def _flush_all(self) -> None:
        t = self._state.transcript
        while self._next < len(t):
            line = entry_line(t[self._next], unfinished=True)
            if line is not None:
                self._write(line)
            self._next += 1

    def _advance(self, now: float) -> None:
        t = self._state.transcript
        while self._next < len(t):
            entry = t[self._next]
            if is_complete(entry):
                self._print(entry)
            elif self._release(entry, now):
                self._write("you: (no transcript yet)")
                self._late.add(self._next)
            else:
                return
            self._next += 1
            self._blocked_since = None

    def _release(self, entry: Entry, now: float) -> bool:
        """A pending user turn gives way once the line after it has waited long enough."""
        t = self._state.transcript
        after = self._next + 1
        if not isinstance(entry, UserTurn) or after >= len(t) or not is_complete(t[after]):
            return False
        if self._blocked_since is None:
            self._blocked_since = now
        return now - self._blocked_since >= self._wait_s

    def _print_late(self) -> None:
        t = self._state.transcript
        for index in sorted(self._late):
            entry = t[index]
            if isinstance(entry, UserTurn) and entry.heard is Heard.FINAL:
                self._late.discard(index)
                self._write(f"you (late): {_one_line(entry.text or '(no words recognised)')}")

    def _print_alerts(self, now: float) -> None:
        alerts = warnings(self._state, now)
        for alert in alerts:
            if alert.kind not in self._alerts:
                self._write(f"warning: {alert.text}")
        self._alerts = frozenset(alert.kind for alert in alerts)

    def _print(self, entry: Entry) -> None:
        line = entry_line(entry)
        if line is not None:
            self._write(line)

    def _write(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()


def is_complete(entry: Entry) -> bool:
    """Whether an entry will not change any more (for plain output)."""
    if isinstance(entry, UserTurn):
        return entry.heard is Heard.FINAL
    if isinstance(entry, AssistantTurn):
        return entry.status is not Reply.STREAMING
    if isinstance(entry, ToolTurn):
        return entry.result is not None
    return True


def entry_line(entry: Entry, *, unfinished: bool = False) -> str | None:
    """One entry as a plain line; None for an entry with nothing to say.

    ``unfinished``: the session ended with this entry still open (say so instead of waiting).
    """
    if isinstance(entry, UserTurn):
        return _user_line(entry)
    if isinstance(entry, AssistantTurn):
        return _assistant_line(entry, unfinished)
    if isinstance(entry, ToolTurn):
        return _tool_line(entry)
    if isinstance(entry, ErrorLine):
        return f"error: {_one_line(entry.text)}"
    assert isinstance(entry, LinkMark)
    return f"link: {_one_line(entry.text)}"


def _user_line(turn: UserTurn) -> str:
    if turn.heard is Heard.FINAL:
        return f"you: {_one_line(turn.text or '(no words recognised)')}"
    if turn.heard is Heard.PARTIAL:
        return f"you: {_one_line(turn.text)} (transcript unfinished)"
    return "you: (no transcript)"


def _assistant_line(turn: AssistantTurn, unfinished: bool) -> str | None:
    text = _one_line(turn.text)
    if turn.status is Reply.DONE and not text:
        return None  # it only called tools; their lines follow
    mark = {
        Reply.STREAMING: "[cut off]" if unfinished else "",
        Reply.INTERRUPTED: "[interrupted]",
        Reply.FAILED: "[failed]",
        Reply.INCOMPLETE: "[incomplete]",
    }.get(turn.status, "")
    if mark and turn.reason:
        mark = f"{mark[:-1]}: {turn.reason}]"
    return "assistant: " + " ".join(part for part in (text, mark) if part)


def _tool_line(turn: ToolTurn) -> str:
    call = f"tool: {turn.name}({_one_line(turn.arguments)})"
    result = turn.result
    if result is None:
        return f"{call} … (no result)"
    ms = f"({result.duration_s * 1000:.0f} ms)"
    if result.ok:
        return f"{call} → {_one_line(result.output)} {ms}"
    return f"{call} ✗ {_one_line(result.error or result.output)} {ms}"


def _one_line(text: str) -> str:
    return text.replace("\r", "").replace("\n", "\\n")
