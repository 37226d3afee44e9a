"""A plain aiortc offerer that talks to `voicecli serve` the way a client would.

The `oai-events` channel is created before the offer, a real (paced) audio track carries the
microphone, the SDP goes out as multipart (standard key) or raw (ephemeral key), and every event
the server sends is checked against the SDK's server event types. Used by the integration tests
and bench/serve_connect.py; voicecli's own client (rtc/) is the product path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from voicecli.audio.formats import FRAME_SAMPLES
from voicecli.realtime.schema import SchemaProblem, check_server_event
from voicecli.rtc import tuning
from voicecli.rtc.tracks import OpusTrack, PacedAudioTrack, PcmQueue, drain_audio
from voicecli.server.responders import Pcm

JsonObject = dict[str, Any]


@dataclass
class Timings:
    offer_s: float = 0.0
    connected_s: float | None = None
    session_created_s: float | None = None


@dataclass
class SignalingError(Exception):
    status: int
    body: str


@dataclass
class Offerer:
    base_url: str
    key: str = "sk-test-local"
    session: JsonObject | None = None
    multipart: bool = True
    events: list[JsonObject] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # perf_counter() of each event
    problems: list[tuple[str, SchemaProblem]] = field(default_factory=list)
    audio_in: list[tuple[float, Pcm]] = field(default_factory=list)  # (arrival time, 20 ms)
    pts_in: list[int] = field(default_factory=list)  # RTP-derived pts of each received frame
    timings: Timings = field(default_factory=Timings)
    call_id: str | None = None
    mic: PcmQueue = field(default_factory=PcmQueue)

    def __post_init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.channel = self.pc.createDataChannel("oai-events")
        self.track = PacedAudioTrack(self.mic.pull)
        self._waiters: list[asyncio.Future[None]] = []
        self.closed = asyncio.Event()  # peer connection closed or failed
        self.channel_closed = asyncio.Event()
        self.channel.on("close", self.channel_closed.set)
        self._pump: asyncio.Task[None] | None = None
        self.channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    async def connect(self, timeout_s: float = 10.0) -> None:
        """Offer, exchange SDP over HTTP, and wait for session.created."""
        tuning.install()
        self.pc.addTrack(OpusTrack(self.track))
        self.timings.offer_s = time.perf_counter()
        with tuning.loopback_ice():
            await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await self._exchange(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await self.wait_for("session.created", timeout_s)

    async def _exchange(self, sdp: str) -> str:
        headers = {"Authorization": f"Bearer {self.key}"}
        async with aiohttp.ClientSession() as http:
            data: Any = sdp
            if self.multipart:
                form = aiohttp.FormData()
                form.add_field("sdp", sdp, content_type="application/sdp")
                if self.session is not None:
                    form.add_field(
                        "session", json.dumps(self.session), content_type="application/json"
                    )
                data = form
            else:
                headers["Content-Type"] = "application/sdp"
            url = f"{self.base_url}/realtime/calls"
            async with http.post(url, data=data, headers=headers) as reply:
                body = await reply.text()
                if reply.status != 201:
                    raise SignalingError(reply.status, body)
                self.call_id = reply.headers["Location"].rsplit("/", 1)[-1]
                return body

    def send(self, event: JsonObject) -> None:
        self.channel.send(json.dumps(event))

    async def wait_for(self, kind: str, timeout_s: float = 10.0, after: int = 0) -> JsonObject:
        """The first event of ``kind`` at or after index ``after`` of ``events``."""
        async with asyncio.timeout(timeout_s):
            while True:
                for event in self.events[after:]:
                    if event.get("type") == kind:
                        return event
                arrived = asyncio.get_running_loop().create_future()
                self._waiters.append(arrived)
                await arrived

    async def wait_closed(self, timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            await self.closed.wait()

    async def wait_channel_closed(self, timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            await self.channel_closed.wait()

    def arrival(self, event: JsonObject) -> float:
        """When ``event`` (an object from ``events``) arrived."""
        return self.arrivals[next(i for i, e in enumerate(self.events) if e is event)]

    def types(self, after: int = 0) -> list[str]:
        return [str(e.get("type")) for e in self.events[after:]]

    def loss_ratio(self, after_frames: int = 0) -> float:
        """Share of frames missing from the received RTP stream (gaps in pts), not timing."""
        pts = self.pts_in[after_frames:]
        if len(pts) < 2:
            return 0.0
        expected = (pts[-1] - pts[0]) // FRAME_SAMPLES + 1
        return 1.0 - len(pts) / expected

    def received_audio(self, since: float = 0.0) -> Pcm:
        chunks = [pcm for at, pcm in self.audio_in if at >= since]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    async def hangup(self) -> int:
        url = f"{self.base_url}/realtime/calls/{self.call_id}/hangup"
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, headers={"Authorization": f"Bearer {self.key}"}) as reply,
        ):
            return reply.status

    async def close(self) -> None:
        await self.pc.close()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump

    # aiortc callbacks.

    def _on_message(self, message: str | bytes) -> None:
        event = json.loads(message)
        problem = check_server_event(event)
        if problem is not None:
            self.problems.append((str(event.get("type")), problem))
        if event.get("type") == "session.created":
            self.timings.session_created_s = time.perf_counter()
        self.events.append(event)
        self.arrivals.append(time.perf_counter())
        waiters, self._waiters = self._waiters, []
        for arrived in waiters:
            if not arrived.done():
                arrived.set_result(None)

    def _on_track(self, track: Any) -> None:
        tuning.use_passthrough_jitter_buffer(self._receiver_of(track))
        self._pump = asyncio.get_running_loop().create_task(self._drain(track))

    def _receiver_of(self, track: Any) -> Any:
        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver.track is track:
                return transceiver.receiver
        raise RuntimeError("no receiver for the remote track")

    async def _drain(self, track: Any) -> None:
        await drain_audio(track, self._audio)

    def _audio(self, pcm: Pcm, pts: int) -> None:
        self.audio_in.append((time.perf_counter(), pcm))
        self.pts_in.append(pts)

    def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self.timings.connected_s is None:
            self.timings.connected_s = time.perf_counter()
        if state in {"closed", "failed"}:
            self.closed.set()
