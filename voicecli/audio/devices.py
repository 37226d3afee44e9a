"""Sound devices through PortAudio (sounddevice): list them, pick one, capture 20 ms blocks and
play 10 ms ones (OUTPUT_BLOCK_MS).

sounddevice is imported inside functions only: the import initialises PortAudio (about 80 ms,
and it lists the devices once, for the life of the process), and a missing PortAudio library
must become a one-line AudioError with an install hint rather than an ImportError at startup.

Threads: PortAudio calls our stream callbacks on its own thread. They only copy samples and
hand them to the event loop with ``call_soon_threadsafe`` (Capture), or copy from a thread-safe
``pull`` (Playback). Everything else (resampling, re-chunking, the watchdog, ``on_lost``) runs on
the loop. Streams are shut down with ``abort()`` + ``close()``, never ``stop()``: ``stop()`` waits
for the device and hangs for good when a source has stopped producing (aiortc-notes §8).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np

from voicecli.audio.dsp import Resampler, to_mono
from voicecli.audio.formats import FRAME_MS, FRAME_SAMPLES, RATE_HZ, Pcm
from voicecli.errors import AudioError, PortAudioMissing

log = logging.getLogger(__name__)

Kind = Literal["input", "output"]
OnLost = Callable[[str], None]

STALL_S = 0.5  # no callback for this long while running: the device is stalled
FIRST_BLOCK_S = 2.0  # the first callback may take longer (Bluetooth profile switch, cold server)
WATCHDOG_TICK_S = 0.1
CLOSE_TIMEOUT_S = 2.0
RING_TARGET_BLOCKS = 2  # resampled playback tops its ring up to 40 ms in 20 ms pulls
# The speaker asks for 10 ms at a time, not 20: PortAudio's ALSA host keeps two periods of this
# size queued, so 20 ms blocks put 45 ms between a pull and the DAC and 10 ms blocks 25 ms
# (measured on PulseAudio; bench/talk_latency.py). It also halves the wait for the next pull.
OUTPUT_BLOCK_MS = 10
# The playout floor that fits: one 20 ms frame of arrival slack plus one speaker block.
PLAYOUT_FLOOR_MS = FRAME_MS + OUTPUT_BLOCK_MS

# PortAudio PaErrorCode values (portaudio.h); sounddevice exposes them only through _lib.
PA_HOST_ERROR = -9999
PA_INVALID_CHANNEL_COUNT = -9998
PA_INVALID_SAMPLE_RATE = -9997
PA_INVALID_DEVICE = -9996
PA_BAD_IO_DEVICE_COMBINATION = -9993  # ALSA: the device could not be opened (not EBUSY)
PA_DEVICE_UNAVAILABLE = -9985  # ALSA: EBUSY, another program holds the device

_INSTALL_HINTS = {
    "Linux": "install PortAudio: `sudo apt install libportaudio2` (Debian/Ubuntu), "
    "`sudo dnf install portaudio` (Fedora)",
    "Darwin": "install PortAudio: `brew install portaudio`",
    "Windows": "reinstall sounddevice, whose wheel bundles PortAudio: "
    "`pip install --force-reinstall sounddevice`",
}


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device as `voicecli devices` shows it."""

    index: int
    name: str
    hostapi: str  # the host API's name: ALSA, Core Audio, Windows WASAPI, ...
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    default_input: bool = False
    default_output: bool = False

    def channels(self, kind: Kind) -> int:
        return self.max_input_channels if kind == "input" else self.max_output_channels

    @property
    def label(self) -> str:
        return f"'{self.name}' (#{self.index})"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ---- PortAudio and its errors -------------------------------------------------------------


def portaudio_missing(system: str | None = None) -> PortAudioMissing:
    """The error for a missing PortAudio library, with the install command for ``system``."""
    system = system or platform.system()
    hint = _INSTALL_HINTS.get(system, "install the PortAudio library (portaudio.com)")
    return PortAudioMissing("the PortAudio library is not installed", hint=hint)


def load_sounddevice() -> ModuleType:
    """``import sounddevice``, with a missing or broken PortAudio as an AudioError."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError('PortAudio library not found')
        raise portaudio_missing() from exc
    except Exception as exc:  # PortAudioError from Pa_Initialize, e.g. a broken ALSA config
        raise AudioError(f"PortAudio could not start: {exc}") from exc
    module: ModuleType = sounddevice  # untyped package: say what it is
    return module


def audio_error(
    exc: BaseException, kind: Kind, device: DeviceInfo | None = None, rate: int | None = None
) -> AudioError:
    """A sounddevice PortAudioError (or ValueError) as one line a user can act on."""
    if isinstance(exc, AudioError):
        return exc
    text, code, host = _error_parts(exc)
    where = f"the {kind} device {device.label}" if device else f"the {kind} device"
    pick = "pick another with --input-device / --output-device (`voicecli devices`)"
    if code == PA_DEVICE_UNAVAILABLE:
        return AudioError(f"{where} is busy or unavailable", hint=f"close what uses it, or {pick}")
    if code == PA_INVALID_SAMPLE_RATE:
        rate_text = f"{rate} Hz" if rate else "the sample rate"
        return AudioError(f"{where} does not support {rate_text} (rate unsupported)", hint=pick)
    if code == PA_INVALID_CHANNEL_COUNT:
        return AudioError(f"{where} does not support mono or stereo", hint=pick)
    if code == PA_INVALID_DEVICE or text.startswith("Error querying device"):
        return AudioError(f"{where} does not exist", hint="run `voicecli devices` to list devices")
    if code == PA_BAD_IO_DEVICE_COMBINATION:
        return AudioError(
            f"{where} could not be opened",
            hint="is the audio server (PulseAudio/PipeWire) running?",
        )
    if code == PA_HOST_ERROR:
        return AudioError(f"{where} failed: {host}", hint="is it still connected? " + pick)
    return AudioError(f"audio error on {where}: {text}")


def _error_parts(exc: BaseException) -> tuple[str, int | None, str]:
    """(text, PaErrorCode or None, host error) from PortAudioError's args (see its docstring)."""
    args = exc.args
    text = str(args[0]) if args else str(exc)
    code = args[1] if len(args) > 1 and isinstance(args[1], int) else None
    host = text
    if len(args) > 2 and isinstance(args[2], tuple) and len(args[2]) == 3:
        _api, host_code, host_text = args[2]
        host = f"{host_text or text} (host error {host_code})"
    return text, code, host


# ---- listing and choosing ------------------------------------------------------------------


def list_devices() -> list[DeviceInfo]:
    """Every device PortAudio knows (as of the sounddevice import), default ones marked."""
    sd = load_sounddevice()
    default_in, default_out = _default_indexes(sd)
    apis = [api["name"] for api in sd.query_hostapis()]
    return [
        DeviceInfo(
            index=index,
            name=str(info["name"]),
            hostapi=apis[info["hostapi"]],
            max_input_channels=int(info["max_input_channels"]),
            max_output_channels=int(info["max_output_channels"]),
            default_samplerate=float(info["default_samplerate"]),
            default_input=index == default_in,
            default_output=index == default_out,
        )
        for index, info in enumerate(sd.query_devices())
    ]


def _default_indexes(sd: ModuleType) -> tuple[int, int]:
    pair = sd.default.device
    return int(pair[0]), int(pair[1])  # -1 when there is none


def resolve_device(spec: str | int | None, kind: Kind) -> DeviceInfo:
    """The device for ``--input-device`` / ``--output-device`` (see select_device)."""
    return select_device(list_devices(), spec, kind)


def select_device(devices: Sequence[DeviceInfo], spec: str | int | None, kind: Kind) -> DeviceInfo:
    """Pick from ``devices``: None or "" is the default, digits an index, else a name part.

    A name part is a case-insensitive substring of the device name; a name matching exactly
    wins over partial matches; several partial matches are an error that lists them.
    """
    usable = [d for d in devices if d.channels(kind) > 0]
    if not usable:
        raise AudioError(
            f"no {kind} device found",
            hint=f"connect a {'microphone' if kind == 'input' else 'speaker'}; "
            "is the audio server (PulseAudio/PipeWire) running? `voicecli devices` lists devices",
        )
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return _default(usable, kind)
    if isinstance(spec, int) or spec.strip().isdigit():
        return _by_index(devices, int(spec), kind)
    return _by_name(usable, spec.strip(), kind)


def _default(usable: Sequence[DeviceInfo], kind: Kind) -> DeviceInfo:
    marked = [d for d in usable if (d.default_input if kind == "input" else d.default_output)]
    return marked[0] if marked else usable[0]  # no default set: the first that can do it


def _by_index(devices: Sequence[DeviceInfo], index: int, kind: Kind) -> DeviceInfo:
    found = next((d for d in devices if d.index == index), None)
    if found is None:
        raise AudioError(f"there is no audio device #{index}", hint=_listing(devices, kind))
    if found.channels(kind) == 0:
        raise AudioError(
            f"device {found.label} is not an {kind} device", hint=_listing(devices, kind)
        )
    return found


def _by_name(usable: Sequence[DeviceInfo], name: str, kind: Kind) -> DeviceInfo:
    wanted = name.casefold()
    exact = [d for d in usable if d.name.casefold() == wanted]
    if len(exact) == 1:
        return exact[0]
    matches = exact or [d for d in usable if wanted in d.name.casefold()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise AudioError(f"no {kind} device matches '{name}'", hint=_listing(usable, kind))
    listed = ", ".join(d.label for d in matches)
    raise AudioError(
        f"'{name}' matches several {kind} devices: {listed}",
        hint="give the index, or more of the name",
    )


def _listing(devices: Sequence[DeviceInfo], kind: Kind) -> str:
    usable = [d.label for d in devices if d.channels(kind) > 0]
    return f"{kind} devices: {', '.join(usable)}" if usable else "run `voicecli devices`"


def choose_format(
    sd: ModuleType, device: DeviceInfo, kind: Kind, rate: int | None
) -> tuple[int, int]:
    """(sample rate, channels) to open ``device`` with: 48 kHz mono when it takes it.

    ``rate`` forces a rate (tests use it to exercise the resampling path). Otherwise 48 kHz if
    PortAudio accepts it, else the device's default rate. Mono, else stereo for devices that
    refuse one channel. Raises AudioError (rate unsupported, ...) when nothing fits.
    """
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    rates = [rate] if rate else [RATE_HZ, round(device.default_samplerate)]
    last: Exception | None = None
    for candidate in dict.fromkeys(rates):  # ordered, without duplicates
        for channels in (1, 2)[: max(1, min(2, device.channels(kind)))]:
            try:
                check(device=device.index, samplerate=candidate, channels=channels, dtype="int16")
            except sd.PortAudioError as exc:
                last = exc
                continue
            return candidate, channels
    assert last is not None
    raise audio_error(last, kind, device, rates[0])


# ---- shared stream lifecycle ---------------------------------------------------------------


class _Guard:
    """What Capture and Playback share: the watchdog, device loss, and a safe close.

    ``last_callback`` is written by the PortAudio thread (a float store, atomic under the GIL)
    and read by the watchdog on the loop, so a stalled loop cannot look like a stalled device.
    """

    def __init__(
        self, kind: Kind, device: DeviceInfo, on_lost: OnLost, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.kind = kind
        self.device = device
        self.loop = loop
        self.stream: Any = None
        self.last_callback = 0.0
        self.closing = False
        self._on_lost = on_lost
        self._lost = False
        self._armed_at = 0.0
        self._timer: asyncio.TimerHandle | None = None

    async def started(self) -> None:
        """After a threaded open: watch the stream, or close it if aclose() ran meanwhile."""
        if not self.closing:
            self.arm()
        elif self.stream is not None:
            stream, self.stream = self.stream, None
            await asyncio.to_thread(_abort_and_close, stream)

    def arm(self) -> None:
        """Start watching (loop thread), once the stream is running."""
        self._armed_at = time.monotonic()
        self._timer = self.loop.call_later(WATCHDOG_TICK_S, self._check)

    def finished(self) -> None:
        """PortAudio's finished_callback (its thread): the stream ended, maybe by itself."""
        with contextlib.suppress(RuntimeError):  # the loop is already closed: shutting down
            self.loop.call_soon_threadsafe(self._finished_on_loop)

    def _finished_on_loop(self) -> None:
        if not self.closing:  # after our own abort()+close() it fires too: not a loss
            self.lost(
                f"the {self.kind} device {self.device.label} stopped "
                "(it was disconnected or the audio server went away)"
            )

    def _check(self) -> None:
        if self.closing or self._lost:
            return
        now = time.monotonic()
        if self.last_callback:
            silent, limit = now - self.last_callback, STALL_S
        else:
            silent, limit = now - self._armed_at, FIRST_BLOCK_S
        if silent > limit:
            verb = "delivered no audio" if self.kind == "input" else "stopped taking audio"
            self.lost(f"the {self.kind} device {self.device.label} {verb} for {silent:.1f} s")
            return
        self._timer = self.loop.call_later(WATCHDOG_TICK_S, self._check)

    def lost(self, cause: str) -> None:
        """Report the loss once (loop thread)."""
        if self._lost or self.closing:
            return
        self._lost = True
        log.info("%s", cause)
        self._on_lost(cause)

    async def aclose(self) -> None:
        """abort() + close() off the loop, time-boxed; idempotent."""
        if self.closing:
            return
        self.closing = True
        if self._timer is not None:
            self._timer.cancel()
        stream, self.stream = self.stream, None
        if stream is None:
            return
        try:
            await asyncio.wait_for(asyncio.to_thread(_abort_and_close, stream), CLOSE_TIMEOUT_S)
        except TimeoutError:  # the thread stays behind; we will not wait for a dead device
            log.warning(
                "closing the %s device took over %s s; left behind", self.kind, CLOSE_TIMEOUT_S
            )


def _abort_and_close(stream: Any) -> None:
    try:
        stream.abort()
    finally:
        stream.close()


def _span_s(later: float, earlier: float, fallback: float) -> float:
    """later - earlier on PortAudio's stream clock; ``fallback`` when a host API gives zeros."""
    span = later - earlier
    return span if later > 0 and earlier > 0 and -1.0 < span < 1.0 else fallback


# ---- capture -------------------------------------------------------------------------------


class _Rechunker:
    """Any-sized blocks in, exactly FRAME_SAMPLES out, each with the time of its first sample."""

    def __init__(self) -> None:
        self._buf = np.zeros(0, dtype=np.int16)
        self._start = 0.0

    def push(self, pcm: Pcm, first_sample_s: float) -> list[tuple[Pcm, float]]:
        # Re-anchor on every block: the device clock, not our arithmetic, says when it was.
        self._start = first_sample_s - self._buf.shape[0] / RATE_HZ
        self._buf = np.concatenate([self._buf, pcm]) if self._buf.shape[0] else pcm
        out = []
        while self._buf.shape[0] >= FRAME_SAMPLES:
            out.append((self._buf[:FRAME_SAMPLES].copy(), self._start))
            self._buf = self._buf[FRAME_SAMPLES:]
            self._start += FRAME_MS / 1000
        return out


class Capture:
    """The microphone: 20 ms blocks of 48 kHz mono int16, paced by the device's clock.

    ``on_block(pcm, captured_s)`` runs on the loop thread with exactly FRAME_SAMPLES samples;
    ``captured_s`` is when the block's first sample was captured (ADC time), on the
    ``time.monotonic()`` clock. ``on_lost(cause)`` runs once, on the loop thread, when the device
    goes away or stalls; the owner then calls ``aclose()``. Neither callback may raise.
    """

    def __init__(
        self,
        device: DeviceInfo,
        on_block: Callable[[Pcm, float], None],
        on_lost: OnLost,
        loop: asyncio.AbstractEventLoop,
        *,
        samplerate: int | None = None,
    ) -> None:
        self.device = device
        self.rate = 0  # the device-side rate, known once started
        self.channels = 1
        self.overflows = 0  # callbacks that reported input overflow (audio lost)
        self._on_block = on_block
        self._forced_rate = samplerate
        self._guard = _Guard("input", device, on_lost, loop)
        self._resampler: Resampler | None = None
        self._chunker = _Rechunker()

    async def astart(self) -> None:
        """Open and start the stream, the blocking calls in a worker thread. Raises AudioError."""
        await asyncio.to_thread(self._open)
        await self._guard.started()

    async def aclose(self) -> None:
        """Stop capturing; idempotent, returns within CLOSE_TIMEOUT_S even for a dead device."""
        await self._guard.aclose()

    def _open(self) -> None:
        sd = load_sounddevice()
        self.rate, self.channels = choose_format(sd, self.device, "input", self._forced_rate)
        if self.rate != RATE_HZ:
            self._resampler = Resampler(self.rate, RATE_HZ)
        try:
            stream = sd.InputStream(
                device=self.device.index,
                samplerate=self.rate,
                channels=self.channels,
                dtype="int16",
                blocksize=self.rate * FRAME_MS // 1000,
                latency="low",
                callback=self._callback,
                finished_callback=self._guard.finished,
            )
        except sd.PortAudioError as exc:
            raise audio_error(exc, "input", self.device, self.rate) from exc
        _start_or_close(sd, stream, "input", self.device)
        self._guard.stream = stream

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio thread: copy the block and hand it to the loop, nothing else."""
        now = time.monotonic()
        self._guard.last_callback = now
        age = _span_s(time_info.currentTime, time_info.inputBufferAdcTime, frames / self.rate)
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are shutting down
            self._guard.loop.call_soon_threadsafe(
                self._push, indata.copy(), now - age, bool(status)
            )

    def _push(self, block: Any, captured_s: float, flagged: bool) -> None:
        """Loop thread: mono, 48 kHz, 20 ms blocks."""
        if self._guard.closing:
            return
        self.overflows += flagged
        pcm = to_mono(block, self.channels)
        if self._resampler is not None:
            pcm = self._resampler.push(pcm)
        for chunk, first_s in self._chunker.push(pcm, captured_s):
            self._on_block(chunk, first_s)


def _start_or_close(sd: ModuleType, stream: Any, kind: Kind, device: DeviceInfo) -> None:
    try:
        stream.start()
    except sd.PortAudioError as exc:
        stream.close()
        raise audio_error(exc, kind, device) from exc


# ---- playback ------------------------------------------------------------------------------


class _Ring:
    """A locked FIFO of int16 samples between the loop (writer) and the callback (reader)."""

    def __init__(self, capacity: int) -> None:
        self._buf = np.zeros(capacity, dtype=np.int16)
        self._lock = threading.Lock()
        self._start = 0
        self.level = 0

    def write(self, pcm: Pcm) -> None:
        with self._lock:
            n = min(pcm.shape[0], self._buf.shape[0] - self.level)  # full: drop the newest
            end = (self._start + self.level) % self._buf.shape[0]
            first = min(n, self._buf.shape[0] - end)
            self._buf[end : end + first] = pcm[:first]
            self._buf[: n - first] = pcm[first:n]
            self.level += n

    def read(self, n: int) -> Pcm:
        with self._lock:
            n = min(n, self.level)
            first = min(n, self._buf.shape[0] - self._start)  # two slice copies, as write()
            out = np.concatenate(
                (self._buf[self._start : self._start + first], self._buf[: n - first])
            )
            self._start = (self._start + n) % self._buf.shape[0]
            self.level -= n
            return out


def _fill(outdata: Any, pcm: Pcm) -> None:
    """Copy mono ``pcm`` into every channel of ``outdata``; silence after a short ``pcm``."""
    n = min(pcm.shape[0], outdata.shape[0])
    outdata[:n] = pcm[:n, None]
    outdata[n:] = 0


class Playback:
    """The speaker: PortAudio asks for audio on its clock and we ``pull`` it.

    ``pull(n, plays_at_s)`` must be thread-safe and quick: at 48 kHz it is called on the
    PortAudio thread, for ``n`` (480: OUTPUT_BLOCK_MS) samples of 48 kHz mono int16, with
    ``plays_at_s`` the time (``time.monotonic()`` clock) the first of them reaches the DAC. It
    may return fewer samples; the rest is silence. When the device cannot run at 48 kHz,
    ``pull`` is called on the loop thread instead, 20 ms at a time, and the audio is resampled
    into a small ring the callback reads: that adds 40-60 ms of latency (RING_TARGET_BLOCKS)
    and keeps PyAV out of the callback. ``on_lost(cause)`` as for Capture.
    """

    def __init__(
        self,
        device: DeviceInfo,
        pull: Callable[[int, float], Pcm],
        on_lost: OnLost,
        loop: asyncio.AbstractEventLoop,
        *,
        samplerate: int | None = None,
    ) -> None:
        self.device = device
        self.rate = 0
        self.channels = 1
        self.underflows = 0  # callbacks that reported output underflow (a click)
        self.pull_errors = 0  # pull raised; that block played as silence
        self._pull = pull
        self._forced_rate = samplerate
        self._guard = _Guard("output", device, on_lost, loop)
        self._resampler: Resampler | None = None
        self._ring: _Ring | None = None
        self._ring_end_s = 0.0  # when the sample after the last one read will play
        self._refill_pending = False

    async def astart(self) -> None:
        """Open and start the stream, the blocking calls in a worker thread. Raises AudioError."""
        self._prepare(await asyncio.to_thread(self._choose))
        await asyncio.to_thread(self._open)
        await self._guard.started()

    async def aclose(self) -> None:
        """Stop playing; idempotent, returns within CLOSE_TIMEOUT_S even for a dead device."""
        await self._guard.aclose()

    def _choose(self) -> tuple[int, int]:
        return choose_format(load_sounddevice(), self.device, "output", self._forced_rate)

    def _prepare(self, fmt: tuple[int, int]) -> None:
        """Loop thread (or the caller's): the resampling ring, pre-filled, when not 48 kHz."""
        self.rate, self.channels = fmt
        if self.rate == RATE_HZ:
            return
        self._resampler = Resampler(RATE_HZ, self.rate)
        self._ring = _Ring(self.rate // 5)  # 200 ms, far above what is ever queued
        self._ring_end_s = time.monotonic()
        self._refill()

    def _open(self) -> None:
        sd = load_sounddevice()
        callback = self._direct if self._ring is None else self._from_ring
        try:
            stream = sd.OutputStream(
                device=self.device.index,
                samplerate=self.rate,
                channels=self.channels,
                dtype="int16",
                blocksize=self.rate * OUTPUT_BLOCK_MS // 1000,
                latency="low",
                callback=callback,
                finished_callback=self._guard.finished,
            )
        except sd.PortAudioError as exc:
            raise audio_error(exc, "output", self.device, self.rate) from exc
        _start_or_close(sd, stream, "output", self.device)
        self._guard.stream = stream

    def _plays_at(self, time_info: Any, frames: int) -> float:
        now = time.monotonic()
        self._guard.last_callback = now
        lead = _span_s(time_info.outputBufferDacTime, time_info.currentTime, frames / self.rate)
        return now + lead

    def _direct(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio thread, 48 kHz: pull straight into the device buffer."""
        plays_at = self._plays_at(time_info, frames)
        self.underflows += bool(status)
        try:
            pcm = self._pull(frames, plays_at)
        except Exception:  # a raise here would end the stream; play silence instead
            self.pull_errors += 1
            pcm = np.zeros(0, dtype=np.int16)
        _fill(outdata, pcm)

    def _from_ring(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio thread, other rates: copy from the ring, ask the loop to top it up."""
        plays_at = self._plays_at(time_info, frames)
        self.underflows += bool(status)
        assert self._ring is not None
        _fill(outdata, self._ring.read(frames))
        self._ring_end_s = plays_at + frames / self.rate
        if not self._refill_pending:
            self._refill_pending = True
            with contextlib.suppress(RuntimeError):
                self._guard.loop.call_soon_threadsafe(self._refill)

    def _refill(self) -> None:
        """Loop thread: pull 20 ms at a time, resample, queue, until RING_TARGET_BLOCKS."""
        self._refill_pending = False
        assert self._ring is not None and self._resampler is not None
        target = RING_TARGET_BLOCKS * self.rate * FRAME_MS // 1000
        while self._ring.level < target and not self._guard.closing:
            plays_at = self._ring_end_s + self._ring.level / self.rate
            try:
                pcm = self._pull(FRAME_SAMPLES, plays_at)
            except Exception:
                self.pull_errors += 1
                pcm = np.zeros(0, dtype=np.int16)
            block = np.zeros(FRAME_SAMPLES, dtype=np.int16)  # keep time: a short pull is silence
            block[: pcm.shape[0]] = pcm[:FRAME_SAMPLES]
            self._ring.write(self._resampler.push(block))
