"""The ONLY place that touches aiortc/aioice internals. Each patch is guarded by a unit test
(tests/unit/test_tuning.py) that fails loudly if the aiortc/aioice internals it relies on change,
and pyproject pins aiortc to the range those tests ran against.

Why each patch exists is measured in ../shared/docs/aiortc-notes.md:
- loopback host candidates: aioice skips 127.0.0.1 (RFC 8445), so a peer on loopback gathers
  nothing usable on a machine whose only reachable address is loopback (§4.4);
- Opus fmtp: aiortc offers no `a=fmtp` at all; the real service answers
  `minptime=10;useinbandfec=1` (§2.3 and the captured answer);
- ICE gathering timeout: aioice waits 5 s for an unreachable STUN server (§4.2);
- pass-through receive jitter buffer: aiortc's adds a fixed 80 ms, +200 ms for the rest of the
  call after one lost packet (§3.2, §3.3);
- outgoing RTP loss: a fault switch for tests of our playout under loss.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aioice.ice
from aiortc.codecs import CODECS
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import is_rtcp
from aiortc.utils import uint16_gt

LOOPBACK_ADDRESS = "127.0.0.1"
# aioice waits up to 5 s for STUN/TURN answers while gathering (aiortc-notes §4.2); a
# blackholed STUN server then stalls every connect by 5 s. A reachable one answers well within
# this; OpenAI needs no server-reflexive candidate anyway (it learns ours peer-reflexively).
GATHER_TIMEOUT_S = 0.8
OPUS_FMTP = {"minptime": 10, "useinbandfec": 1}

_loopback_only: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "voicecli_loopback_only", default=False
)
_original_host_addresses = aioice.ice.get_host_addresses


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if _loopback_only.get():
        return [LOOPBACK_ADDRESS]
    return _original_host_addresses(use_ipv4, use_ipv6)


@contextlib.contextmanager
def loopback_ice(enabled: bool = True) -> Iterator[None]:
    """Gather only the 127.0.0.1 host candidate for peers whose description is set inside.

    Scoped with a ContextVar, so the setting reaches aioice's gathering (which runs in the
    awaiting task and the tasks it spawns) without changing any other connection in the process.
    """
    install()
    token = _loopback_only.set(enabled)
    try:
        yield
    finally:
        _loopback_only.reset(token)


_installed = False


def install() -> None:
    """Apply the process-wide tuning once (idempotent). Call before creating peer connections."""
    global _installed
    if _installed:
        return
    aioice.ice.get_host_addresses = _host_addresses
    set_gather_timeout(GATHER_TIMEOUT_S)
    _tune_opus_offer()
    _installed = True


def set_gather_timeout(seconds: float) -> None:
    """How long ICE gathering waits for STUN/TURN servers (aioice's default is 5 s)."""
    gather = aioice.ice.Connection.get_component_candidates
    gather.__defaults__ = (seconds,)


def _tune_opus_offer() -> None:
    # Mutating the shared codec table is how aiortc lets an application advertise fmtp.
    for codec in CODECS["audio"]:
        if codec.mimeType.lower() == "audio/opus":
            codec.parameters.update(OPUS_FMTP)


class PassThroughJitterBuffer:
    """Hands every in-order RTP packet on at once; our PlayoutBuffer owns de-jittering.

    Late or duplicate packets are dropped rather than delivered: aiortc's TimestampMapper treats
    any backwards timestamp as a 32-bit wrap (aiortc-notes §3.3).
    """

    capacity = 16

    def __init__(self) -> None:
        self._last: int | None = None

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        if self._last is not None and not uint16_gt(packet.sequence_number, self._last):
            return False, None
        self._last = packet.sequence_number
        return False, JitterFrame(data=packet._data, timestamp=packet.timestamp)


_JITTER_ATTR = "_RTCRtpReceiver__jitter_buffer"


def use_passthrough_jitter_buffer(receiver: Any) -> None:
    """Replace an audio receiver's jitter buffer; call before any packet arrives."""
    if not hasattr(receiver, _JITTER_ATTR):
        raise RuntimeError("aiortc changed: RTCRtpReceiver has no jitter buffer attribute")
    setattr(receiver, _JITTER_ATTR, PassThroughJitterBuffer())


SendRtp = Callable[[bytes], Awaitable[None]]


def drop_outgoing_rtp(dtls_transport: Any, fraction: float, rng: random.Random) -> None:
    """Fault switch: drop ``fraction`` of the RTP (never RTCP) packets this transport sends."""
    if not 0.0 < fraction <= 1.0:
        return
    send: SendRtp = dtls_transport._send_rtp

    async def lossy_send(data: bytes) -> None:
        if not is_rtcp(data) and rng.random() < fraction:
            return
        await send(data)

    dtls_transport._send_rtp = lossy_send


def watch_outgoing_rtp(dtls_transport: Any, on_sent: Callable[[], None]) -> None:
    """Call ``on_sent`` as each RTP (not RTCP) packet leaves: the end of our send path.

    aiortc's sender is one loop (recv → encode → send, aiortc-notes §1.1), so the packet
    leaving is the frame the track returned last: this is how `talk` measures capture → RTP.
    """
    send: SendRtp = dtls_transport._send_rtp

    async def watched_send(data: bytes) -> None:
        await send(data)
        if not is_rtcp(data):
            on_sent()

    dtls_transport._send_rtp = watched_send
