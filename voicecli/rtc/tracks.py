"""Outgoing audio tracks: exact 20 ms s16 mono 48 kHz frames with sample-count pts.

aiortc's sender pulls frames as fast as recv() returns them and dies on any exception from it
(aiortc-notes §1.1), and frames over 20 ms lose audio (§1.2). Every track here therefore returns
exactly one 20 ms frame per call, never raises except MediaStreamError, and is paced: by the loop
clock for files and synthetic audio (PacedAudioTrack), by the sound card for the microphone.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
from collections import deque
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from voicecli.audio.dsp import to_mono
from voicecli.audio.formats import FRAME_SAMPLES, RATE_HZ, Pcm

TIME_BASE = fractions.Fraction(1, RATE_HZ)
# aiortc's own encoder sends stereo at 96 kbit/s without FEC (aiortc-notes §2.2): speech needs
# one channel (its mono→stereo upmix also costs 3 dB) and far fewer bits.
OPUS_BITRATE = 32_000
# libopus options through PyAV (unknown names are silently ignored, so a unit test reads them
# back). FEC with an expected loss of 10 % lets a receiver recover single lost packets.
OPUS_OPTIONS = {"application": "voip", "fec": "1", "packet_loss": "10"}
MAX_LAG_S = 0.2  # a stalled loop catches up at most this much, then the clock restarts


def audio_frame(pcm: Pcm, pts: int) -> av.AudioFrame:
    """One s16 mono 48 kHz frame with pts in samples (time_base 1/48000, as aiortc expects)."""
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = RATE_HZ
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


class OpusTrack(MediaStreamTrack):
    """Another audio track's frames, encoded to Opus here on the loop, as packets for aiortc.

    Given a frame, aiortc's sender encodes it in a worker thread (a thread hop and a loop
    wake-up per 20 ms) and computes the RTP audio level in Python (~95 µs); given a packet it
    sends it as is. The encode itself takes ~0.2 ms, so doing it inline saved ~2 % of a core
    in `talk` (bench/talk_latency.py). Mono, OPUS_BITRATE, FEC (OPUS_OPTIONS). Packets keep the
    source's pts, so RTP timestamps are its sample count.
    """

    kind = "audio"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.source = source
        self._codec = _opus_encoder()
        self._pending: deque[av.Packet[Any]] = deque()
        self._offset: int | None = None  # source pts - codec pts (libopus shifts by its delay)

    async def recv(self) -> av.Packet[Any]:
        while not self._pending:
            frame = await self.source.recv()
            assert isinstance(frame, av.AudioFrame)  # an audio track yields audio frames
            self._encode(frame)
        return self._pending.popleft()

    def _encode(self, frame: av.AudioFrame) -> None:
        for packet in self._codec.encode(frame):
            assert packet.pts is not None  # libopus stamps every packet
            if self._offset is None:
                self._offset = int(frame.pts or 0) - packet.pts
            packet.pts += self._offset
            packet.time_base = TIME_BASE
            self._pending.append(packet)

    def stop(self) -> None:
        super().stop()
        self.source.stop()  # as when aiortc's sender stops the track it was given


def _opus_encoder() -> av.AudioCodecContext:
    codec = av.CodecContext.create("libopus", "w")
    assert isinstance(codec, av.AudioCodecContext)
    codec.bit_rate = OPUS_BITRATE
    codec.options = dict(OPUS_OPTIONS)
    codec.format = "s16"
    codec.layout = "mono"
    codec.sample_rate = RATE_HZ
    codec.time_base = TIME_BASE
    return codec


class PacedAudioTrack(MediaStreamTrack):
    """20 ms s16 mono 48 kHz frames at real-time pace; aiortc's sender does not pace (§1.1)."""

    kind = "audio"

    def __init__(self, source: Callable[[int], Pcm]) -> None:
        super().__init__()
        self._source = source
        self._pts = 0
        self._start: float | None = None
        self.muted = asyncio.Event()  # set: send nothing at all (a silently dead peer)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._wait_turn()
        frame = audio_frame(self._source(FRAME_SAMPLES), self._pts)
        self._pts += FRAME_SAMPLES
        return frame

    async def _wait_turn(self) -> None:
        if self.muted.is_set():
            await asyncio.Event().wait()  # never returns; the sender is cancelled at close
        loop = asyncio.get_running_loop()
        if self._start is None or loop.time() - self._deadline() > MAX_LAG_S:
            self._start = loop.time() - self._pts / RATE_HZ
        delay = self._deadline() - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def _deadline(self) -> float:
        assert self._start is not None
        return self._start + self._pts / RATE_HZ


class MicTrack(MediaStreamTrack):
    """The microphone: one long-lived track for the whole call, clocked by the sound card.

    The capture stream pushes exact 20 ms blocks on the loop thread; recv() hands them on in
    order, so the device clock paces RTP (no sleeps). A stalled loop must not turn into latency:
    the queue keeps the newest few blocks and drops the oldest. Muted or gated (half duplex),
    the blocks become silence with the same pts, so RTP keeps flowing and the service's VAD
    sees a quiet user rather than a dead line.
    """

    kind = "audio"

    def __init__(self, max_frames: int = 5) -> None:
        super().__init__()
        self._blocks: deque[tuple[Pcm, float]] = deque()
        self._arrived = asyncio.Event()
        self._max = max_frames
        self._pts = 0
        self.muted = False
        self.gated = False
        self.dropped = 0  # blocks dropped because the loop fell behind
        self.last_capture_s: float | None = None  # ADC time of the block handed on last

    def push(self, pcm: Pcm, captured_s: float) -> None:
        """One 20 ms block and its ADC time (time.monotonic() clock); loop thread only."""
        if len(self._blocks) >= self._max:
            self._blocks.popleft()
            self.dropped += 1
        self._blocks.append((pcm, captured_s))
        self._arrived.set()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        while not self._blocks:
            self._arrived.clear()
            await self._arrived.wait()
        pcm, self.last_capture_s = self._blocks.popleft()
        if self.muted or self.gated:
            pcm = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        frame = audio_frame(pcm, self._pts)
        self._pts += FRAME_SAMPLES
        return frame


class PcmQueue:
    """A source for PacedAudioTrack: queued PCM, then silence (RTP keeps flowing, like a mic)."""

    def __init__(self) -> None:
        self._queue: deque[Pcm] = deque()
        self._offset = 0
        self.drained = asyncio.Event()  # set whenever everything queued has been sent
        self.drained.set()

    def push(self, pcm: Pcm) -> None:
        if pcm.size:
            self._queue.append(pcm)
            self.drained.clear()

    def pull(self, n: int) -> Pcm:
        out = np.zeros(n, dtype=np.int16)
        filled = 0
        while filled < n and self._queue:
            filled += self._take(out[filled:])
        if not self._queue:
            self.drained.set()
        return out

    def _take(self, into: Pcm) -> int:
        head = self._queue[0]
        count = min(into.size, head.size - self._offset)
        into[:count] = head[self._offset : self._offset + count]
        self._offset += count
        if self._offset >= head.size:
            self._queue.popleft()
            self._offset = 0
        return count


AudioSink = Callable[[Pcm, int], None]  # mono 48 kHz samples and the frame's pts (samples)


async def drain_audio(track: MediaStreamTrack, sink: AudioSink) -> None:
    """Receive a remote audio track until it ends, handing each frame on as mono.

    Always drain: an undrained remote track grows memory without bound (aiortc-notes §3.4).
    aiortc's Opus decoder gives packed s16 stereo (§2.5); the sink gets mono.
    """
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            assert isinstance(frame, av.AudioFrame)  # an audio track yields audio frames
            sink(to_mono(_samples(frame), len(frame.layout.channels)), int(frame.pts or 0))


def _samples(frame: av.AudioFrame) -> npt.NDArray[Any]:
    """The frame's samples; packed s16 (the Opus decoder's) as a view, without to_ndarray's copy."""
    if frame.format.name != "s16":
        return frame.to_ndarray()
    count = frame.samples * len(frame.layout.channels)
    return np.frombuffer(memoryview(frame.planes[0]), np.int16, count=count)
