"""The `oai-events` data channel: validated JSON events out, leniently parsed events in.

- Events sent before the channel opens are queued, not lost (aiortc raises on send before open).
- Every outgoing event is validated against the SDK's types first; an invalid one raises
  InvalidEventError and never reaches the wire (a malformed event can make the real service drop
  the channel, realtime-protocol.md §5.2).
- The last outgoing events are kept: when the channel closes within a short window after we sent
  something, the diagnosis names that event's type and event_id.
- Backpressure: while aiortc's bufferedAmount is above a high-water mark, events wait in our
  queue and are flushed on ``bufferedamountlow``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDataChannel

from voicecli.errors import InvalidEventError
from voicecli.realtime.events import ServerEvent, encode_client_event, parse_server_event

LABEL = "oai-events"
HIGH_WATER_BYTES = 1 << 20
LOW_WATER_BYTES = 64 << 10
REJECT_WINDOW_S = 2.0


@dataclass(frozen=True, slots=True)
class Sent:
    at: float
    type: str
    event_id: str | None


class EventChannel:
    """Wraps one RTCDataChannel; reports events and its own close through callbacks."""

    def __init__(
        self,
        channel: RTCDataChannel,
        on_event: Callable[[ServerEvent], None],
        on_close: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        history: int = 32,
    ) -> None:
        self._channel = channel
        self._on_event = on_event
        self._on_close = on_close
        self._clock = clock
        self._pending: deque[tuple[str, Sent]] = deque()
        self.sent: deque[Sent] = deque(maxlen=history)
        self.opened = asyncio.Event()
        channel.bufferedAmountLowThreshold = LOW_WATER_BYTES
        channel.on("open", self._on_open)
        channel.on("bufferedamountlow", self._flush)
        channel.on("message", self._on_message)
        channel.on("close", self._closed)

    @property
    def open(self) -> bool:
        return bool(self._channel.readyState == "open")

    def send(self, event: dict[str, Any]) -> None:
        """Validate and send (or queue) one event; raises InvalidEventError, sends nothing."""
        text = encode_client_event(event)
        record = Sent(0.0, str(event["type"]), event.get("event_id"))
        self._pending.append((text, record))
        self._flush()

    def _on_open(self) -> None:
        self.opened.set()
        self._flush()

    def _flush(self) -> None:
        while self._pending and self.open and self._channel.bufferedAmount < HIGH_WATER_BYTES:
            text, record = self._pending.popleft()
            try:
                self._channel.send(text)
            except ValueError as exc:  # larger than the peer's max-message-size
                raise InvalidEventError(
                    f"{record.type} is too large for the data channel: {exc}",
                    hint="the event was not sent",
                ) from None
            self.sent.append(Sent(self._clock(), record.type, record.event_id))

    def _on_message(self, message: str | bytes) -> None:
        self._on_event(parse_server_event(message))

    def _closed(self) -> None:
        self._on_close(self.close_diagnosis())

    def close_diagnosis(self) -> str:
        """Why the channel is gone, naming our last event when it went right after it."""
        last = self.sent[-1] if self.sent else None
        if last is not None and self._clock() - last.at <= REJECT_WINDOW_S:
            ago = self._clock() - last.at
            return (
                f"the data channel closed {ago:.1f} s after voicecli sent {last.type} "
                f"(event_id {last.event_id}): the service likely rejected that event"
            )
        return "the data channel closed"

    def close(self) -> None:
        self._channel.close()
