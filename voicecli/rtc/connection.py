"""The client's WebRTC link to the Realtime API (or `voicecli serve`): one RTCPeerConnection.

Connect goes through named stages under one overall timeout, so a stall is reported as the stage
that stalled (aiortc itself never times out: a dead peer takes 30–60 s to show, aiortc-notes §4.9).
After connect, the link is watched: a data-channel close (which leaves the peer connection
"connected"), a peer connection closed or failed, or no inbound RTP for a while all become one
Disconnected event with its cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.stats import RTCInboundRtpStreamStats, RTCRemoteInboundRtpStreamStats

from voicecli.audio.formats import Pcm
from voicecli.errors import NetworkError
from voicecli.realtime.events import ServerEvent, event_type
from voicecli.realtime.transport import (
    Disconnected,
    LinkState,
    NetworkStats,
    RemoteAudio,
    TransportEvent,
    until_disconnected,
)
from voicecli.rtc import tuning
from voicecli.rtc.channel import LABEL, EventChannel
from voicecli.rtc.signaling import Signaler
from voicecli.rtc.tracks import OpusTrack, drain_audio

log = logging.getLogger(__name__)

RTP_CLOCK_PER_MS = 48  # Opus RTP timestamps tick at 48 kHz; aiortc reports jitter in them


class Stage(StrEnum):
    GATHERING = "ICE gathering"
    SIGNALING = "signaling"
    ICE = "ICE connectivity checks"
    DTLS = "DTLS handshake"
    DATA_CHANNEL = "data channel open"
    SESSION = "session.created"


_HINTS = {
    Stage.GATHERING: "a STUN/TURN server in network.ice_servers does not answer",
    Stage.SIGNALING: "the endpoint did not answer the SDP offer; check the base URL",
    Stage.ICE: "UDP to the service looks blocked (VPN or firewall); `voicecli doctor` checks it",
    Stage.DTLS: "the media path opened but the handshake did not finish; try again",
    Stage.DATA_CHANNEL: "the service did not open the event channel; try again",
    Stage.SESSION: "the service connected but sent no session.created; try again",
}


@dataclass(frozen=True)
class RtcOptions:
    ice_servers: tuple[RTCIceServer, ...] = ()  # none by default: OpenAI needs none (§4.3)
    loopback: bool = False  # gather 127.0.0.1 only (the local server)
    connect_timeout_s: float = 10.0
    liveness_timeout_s: float = 5.0
    stats_interval_s: float = 1.0
    # ICE + DTLS get at most this long of connect_timeout_s (None: no limit of their own), so
    # `--transport auto` can still fall back to a WebSocket within the connect timeout.
    ice_timeout_s: float | None = None


class RtcTransport:
    """A Transport over WebRTC: mic track out, remote audio to ``on_audio``, events both ways."""

    kind = "webrtc"  # what the dashboard shows
    service_tracks_playback = True  # output_audio_buffer.* events; the service truncates

    def __init__(
        self,
        signaler: Signaler,
        options: RtcOptions,
        mic: MediaStreamTrack,
        on_audio: RemoteAudio | None = None,
        on_rtp_sent: Callable[[], None] | None = None,
    ) -> None:
        tuning.install()
        self._signaler = signaler
        self.options = options
        self._on_audio = on_audio
        self._on_rtp_sent = on_rtp_sent
        self._queue: asyncio.Queue[TransportEvent] = asyncio.Queue()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=list(options.ice_servers)))
        self.channel = EventChannel(
            self.pc.createDataChannel(LABEL), self._on_event, self._on_channel_close
        )
        transceiver = self.pc.addTransceiver(OpusTrack(mic), direction="sendrecv")
        self._sender = transceiver.sender
        tuning.use_passthrough_jitter_buffer(transceiver.receiver)
        self.call_id: str | None = None
        self.stage = Stage.GATHERING
        self.stage_times: dict[Stage, float] = {}
        self._started = time.monotonic()
        self._milestones = {name: asyncio.Event() for name in ("connected", "session")}
        self._remote: MediaStreamTrack | None = None
        self._closing = False
        self._disconnected = False
        self._ended = asyncio.Event()
        self._wire()

    def _wire(self) -> None:
        self.pc.on("iceconnectionstatechange", self._on_ice_state)
        self.pc.on("connectionstatechange", self._on_state)
        self.pc.on("track", self._on_track)

    # Connect.

    async def connect(self, session: dict[str, Any] | None) -> None:
        """Offer → answer → ICE → DTLS → data channel → session.created, or a NetworkError."""
        try:
            async with asyncio.timeout(self.options.connect_timeout_s):
                await self._connect(session)
        except TimeoutError:
            raise NetworkError(
                f"could not connect within {self.options.connect_timeout_s:g} s: "
                f"stalled at {self.stage}",
                hint=_HINTS[self.stage],
            ) from None

    async def _connect(self, session: dict[str, Any] | None) -> None:
        with tuning.loopback_ice(self.options.loopback):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        self._reach(Stage.SIGNALING)
        answer = await self._signaler.exchange(self.pc.localDescription.sdp, session)
        self.call_id = answer.call_id
        await self.pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
        if self._on_rtp_sent is not None:  # the sender's transport exists once the answer is set
            tuning.watch_outgoing_rtp(self._sender.transport, self._on_rtp_sent)
        self._reach(Stage.ICE)
        async with asyncio.timeout(self.options.ice_timeout_s):  # None: the overall limit only
            await self._milestones["connected"].wait()  # ICE, then DTLS (_on_ice_state, _on_state)
        self._reach(Stage.DATA_CHANNEL)
        await self.channel.opened.wait()
        self._reach(Stage.SESSION)
        await self._milestones["session"].wait()

    def _reach(self, stage: Stage) -> None:
        self.stage = stage
        at = time.monotonic() - self._started
        self.stage_times[stage] = at
        self._queue.put_nowait(LinkState(stage.value, at))

    # The link while it runs.

    def send(self, event: dict[str, Any]) -> None:
        self.channel.send(event)

    def events(self) -> AsyncIterator[TransportEvent]:
        return until_disconnected(self._queue)

    async def run(self) -> None:
        """Drain remote audio and watch the link until it closes; owns its tasks."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._pump())
            await self._watch()

    async def close(self) -> None:
        """Hang up and close; safe to call more than once."""
        if self._closing:
            return
        self._closing = True
        self._ended.set()
        if not self._disconnected:  # end the event stream for its consumers
            self._disconnected = True
            self._queue.put_nowait(Disconnected("closed by voicecli"))
        try:
            if self.call_id is not None:
                await self._signaler.hangup(self.call_id)
            await self._signaler.aclose()
        finally:
            await self.pc.close()  # whatever the HTTP side did, release the sockets

    # aiortc callbacks (sync, on the loop).

    def _on_event(self, event: ServerEvent) -> None:
        if event_type(event) == "session.created":
            self._milestones["session"].set()
        self._queue.put_nowait(event)

    def _on_channel_close(self, diagnosis: str) -> None:
        self._disconnect(diagnosis)

    def _on_ice_state(self) -> None:
        if self.pc.iceConnectionState == "completed" and self.stage is Stage.ICE:
            self._reach(Stage.DTLS)

    def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self._milestones["connected"].set()
        elif state in {"closed", "failed"}:
            self._disconnect(f"the peer connection {state}")

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._remote = track

    def _disconnect(self, cause: str) -> None:
        if self._closing or self._disconnected:
            return
        self._disconnected = True
        self._ended.set()
        self._queue.put_nowait(Disconnected(cause))

    # Tasks.

    async def _pump(self) -> None:
        """Always drain the remote track: undrained frames grow memory without bound (§3.4)."""
        if self._remote is not None:  # the track arrives with the answer, before run() starts
            await drain_audio(self._remote, self._audio)

    def _audio(self, pcm: Pcm, pts: int | None) -> None:
        if self._on_audio is not None:
            self._on_audio(pcm, pts)

    async def _watch(self) -> None:
        last_received, quiet_since = -1, time.monotonic()
        while not await self._ended_within(self.options.stats_interval_s):
            stats = await self._stats()
            self._queue.put_nowait(stats)
            if stats.packets_received != last_received:
                last_received, quiet_since = stats.packets_received, time.monotonic()
            elif time.monotonic() - quiet_since >= self.options.liveness_timeout_s:
                self._disconnect(
                    f"no audio from {self._signaler.host} for {self.options.liveness_timeout_s:g} s"
                )

    async def _ended_within(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True as soon as the link is closed or lost (a prompt exit)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._ended.wait()
        return self._closing or self._disconnected

    async def _stats(self) -> NetworkStats:
        report = await self.pc.getStats()
        rtt: float | None = None
        jitter: float | None = None
        received = lost = 0
        for stat in report.values():
            if isinstance(stat, RTCInboundRtpStreamStats):
                received, lost = stat.packetsReceived, stat.packetsLost
                jitter = None if stat.jitter is None else stat.jitter / RTP_CLOCK_PER_MS
            elif isinstance(stat, RTCRemoteInboundRtpStreamStats) and stat.roundTripTime:
                rtt = stat.roundTripTime * 1000  # None until an RTCP RR echoes our SR
        return NetworkStats(rtt, jitter, received, lost)
