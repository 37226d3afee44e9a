"""What the session sees of a transport (WebRTC now, WebSocket later): events in, events out.

The session never imports aiortc: it gets ServerEvents plus these link-level facts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from voicecli.audio.formats import Pcm
from voicecli.realtime.events import ServerEvent

# Where a transport delivers the model's audio: mono 48 kHz int16 and the pts of its first
# sample in samples (WebRTC), or None when the transport has no timestamps (WebSocket: contiguous).
RemoteAudio = Callable[[Pcm, int | None], None]


@dataclass(frozen=True, slots=True)
class LinkState:
    """A connection milestone (signaling, ICE, DTLS, data channel …) and when it was reached."""

    name: str
    at_s: float  # seconds since the connection attempt began


@dataclass(frozen=True, slots=True)
class NetworkStats:
    """One getStats() sample."""

    rtt_ms: float | None
    jitter_ms: float | None
    packets_received: int
    packets_lost: int


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The link is gone; ``cause`` says why in words a user can act on."""

    cause: str


TransportEvent = ServerEvent | LinkState | NetworkStats | Disconnected


class Transport(Protocol):
    def send(self, event: dict[str, Any]) -> None:
        """Validate and send one client event (raises InvalidEventError, sends nothing)."""
        ...

    def events(self) -> AsyncIterator[TransportEvent]:
        """Everything that happens on the link, in order, until it closes."""
        ...

    async def close(self) -> None: ...


async def until_disconnected(queue: asyncio.Queue[TransportEvent]) -> AsyncIterator[TransportEvent]:
    """A transport's events() from its queue: everything up to and including Disconnected."""
    while True:
        event = await queue.get()
        yield event
        if isinstance(event, Disconnected):
            return
