"""The WebRTC side of one call in `voicecli serve`: an aiortc answerer shaped like the real one.

Like the service, it answers with host candidates only (127.0.0.1 here), Opus with
``minptime=10;useinbandfec=1``, and the data channel; it never contacts a STUN server. Audio
goes out as paced 20 ms Opus frames whether or not "the model" is speaking (the real service's
RTP never stops either).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from voicecli.audio.formats import Pcm
from voicecli.rtc import tuning
from voicecli.rtc.tracks import OpusTrack, PacedAudioTrack, drain_audio
from voicecli.server.responders import Responder
from voicecli.server.session import CallSession, SessionOptions
from voicecli.server.shapes import JsonObject

log = logging.getLogger(__name__)

# TEST-NET-1 (RFC 5737) is never routed: checks sent there vanish, as when UDP is blocked.
UNREACHABLE_CANDIDATE = "a=candidate:1 1 udp 2130706431 192.0.2.1 3478 typ host"


@dataclass
class CallFaults:
    """Per-call fault switches (see server/faults.py for the flags)."""

    drop_after_s: float | None = None
    drop_silently: bool = False
    max_session_s: float | None = None
    rtp_loss: float = 0.0
    seed: int | None = None
    unreachable_ice: bool = False


def only_unreachable_candidates(sdp: str) -> str:
    """Each media section's candidates replaced by one that can never be reached."""
    lines: list[str] = []
    placed = False
    for line in sdp.splitlines():
        if line.startswith("m="):
            placed = False
        if line.startswith("a=candidate:"):
            if not placed:
                lines.append(UNREACHABLE_CANDIDATE)
            placed = True
            continue
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def without_candidates(sdp: str) -> str:
    """The offer without its candidates: the server's own checks must not open the path
    either (a check reaching the client teaches it a peer-reflexive route back)."""
    return "".join(line for line in sdp.splitlines(True) if not line.startswith("a=candidate:"))


class Call:
    """One WebRTC call: peer connection, data channel, audio in and out, and its session."""

    def __init__(
        self,
        call_id: str,
        responder: Responder,
        session: JsonObject,
        options: SessionOptions,
        faults: CallFaults,
    ) -> None:
        self.call_id = call_id
        self.faults = faults
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.session = CallSession(self, responder, session, options)
        self.track = PacedAudioTrack(self.session.pull_audio)
        self.closed = asyncio.Event()
        self._channel: RTCDataChannel | None = None
        self._remote: MediaStreamTrack | None = None
        self._silent = False
        self._wire()

    def _wire(self) -> None:
        self.pc.on("datachannel", self._on_channel)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    async def answer(self, offer_sdp: str) -> str:
        """Set the offer, answer it; returns the answer SDP with its candidates."""
        tuning.install()
        if self.faults.unreachable_ice:
            offer_sdp = without_candidates(offer_sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "audio":
                transceiver.direction = "sendrecv"
                transceiver.sender.replaceTrack(OpusTrack(self.track))
                tuning.use_passthrough_jitter_buffer(transceiver.receiver)
        answer = await self.pc.createAnswer()
        with tuning.loopback_ice():
            await self.pc.setLocalDescription(answer)
        self._apply_rtp_loss()
        sdp = str(self.pc.localDescription.sdp)
        return only_unreachable_candidates(sdp) if self.faults.unreachable_ice else sdp

    def _apply_rtp_loss(self) -> None:
        if self.faults.rtp_loss <= 0:
            return
        rng = random.Random(self.faults.seed)
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "audio":
                tuning.drop_outgoing_rtp(transceiver.sender.transport, self.faults.rtp_loss, rng)
                return

    async def run(self) -> None:
        """Serve the call until it closes, then release everything."""
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.session.run())
                helpers = [tasks.create_task(self._pump()), tasks.create_task(self._timers())]
                await self.closed.wait()
                self.session.close()
                # A peer that never connected never ends its remote track: cancel, don't wait.
                for task in helpers:
                    task.cancel()
                await self.pc.close()
        finally:
            self.session.close()

    async def close(self) -> None:
        self.closed.set()

    # Link (what the session calls).

    def send_text(self, text: str) -> None:
        channel = self._channel
        if channel is None or channel.readyState != "open" or self._silent:
            log.debug("call %s: event dropped, channel not open", self.call_id)
            return
        channel.send(text)

    def close_events(self) -> None:
        if self._channel is not None:
            self._channel.close()

    def drop(self) -> None:
        """Fault: drop the call, gracefully (pc.close) or silently (stop sending anything)."""
        if self.faults.drop_silently:
            self._silent = True
            self.track.muted.set()
        else:
            self.closed.set()

    # aiortc events.

    def _on_channel(self, channel: RTCDataChannel) -> None:
        if self._channel is not None:
            return  # the service uses the first channel the client opens
        self._channel = channel
        channel.on("message", self._on_message)
        if channel.readyState == "open":
            self.session.on_open()
        else:
            channel.on("open", self.session.on_open)

    def _on_message(self, message: str | bytes) -> None:
        if self._silent:
            return
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        self.session.on_message(text)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._remote is None:
            self._remote = track

    def _on_state(self) -> None:
        if self.pc.connectionState in {"failed", "closed"}:
            self.closed.set()

    # Tasks.

    async def _pump(self) -> None:
        if self._remote is not None:  # set during setRemoteDescription; the offer had audio
            await drain_audio(self._remote, self._audio)

    def _audio(self, pcm: Pcm, pts: int) -> None:
        if not self._silent:
            self.session.on_audio(pcm)

    async def _timers(self) -> None:
        waits: list[tuple[float, Callable[[], None]]] = []
        if self.faults.drop_after_s is not None:
            waits.append((self.faults.drop_after_s, self.drop))
        if self.faults.max_session_s is not None:
            waits.append((self.faults.max_session_s, self.session.expire))
        start = asyncio.get_running_loop().time()
        for at, action in sorted(waits, key=lambda w: w[0]):
            await asyncio.sleep(max(0.0, start + at - asyncio.get_running_loop().time()))
            action()
