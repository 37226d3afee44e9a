"""Audio checks: PortAudio, the chosen devices, the rates they really open, a 2 s recording,
an optional test tone (--play) and an optional echo-path measurement (--echo-test).

They run in order in one group (PortAudio is not thread-safe, and each step needs the device the
one before found); a step whose prerequisite failed is skipped and says which. Blocking PortAudio
calls run in a daemon thread (runner.in_thread) or through Capture/Playback, never on the loop.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from voicecli.audio.devices import (
    Capture,
    DeviceInfo,
    Kind,
    Playback,
    audio_error,
    list_devices,
    load_sounddevice,
    select_device,
)
from voicecli.audio.dsp import (
    FULL_SCALE,
    normalized_xcorr_peak,
    peak_dbfs,
    rms_dbfs,
    silence,
    tone,
)
from voicecli.audio.formats import RATE_HZ, Pcm
from voicecli.doctor.checks import Finding, fail, ok, skip, warn
from voicecli.doctor.runner import in_thread
from voicecli.errors import AudioError, VoiceCliError

SECTION = "audio"
PROBE_RATES = (16_000, 24_000, 44_100, 48_000)
RECORD_S = 2.0
CLIP_SHARE = 0.001  # more than 0.1 % of samples at full scale is audible distortion
QUIET_PEAK_DBFS = -50.0  # a spoken word peaks far above this on any working mic
TONE_HZ, TONE_S, TONE_DBFS = 440.0, 1.0, -12.0
CHIRP_FROM_HZ, CHIRP_TO_HZ, CHIRP_S, CHIRP_DBFS = 300.0, 4000.0, 0.5, -12.0
ECHO_LEAD_S, ECHO_TAIL_S = 0.3, 0.7
ECHO_MIN_R = 0.3  # the chirp is in the recording: its waveform correlates at least this much
STRONG_ECHO_DBFS = -40.0  # as loud as speech to a VAD at its default threshold
NO_PULSE_HINT = "is the audio server (PulseAudio/PipeWire) running? `pactl info` says"


@dataclass
class AudioProbe:
    """What the audio checks share: the options, and what the earlier steps found."""

    input_spec: str | None = None
    output_spec: str | None = None
    sd: ModuleType | None = None
    devices: list[DeviceInfo] = field(default_factory=list)
    chosen: dict[str, DeviceInfo] = field(default_factory=dict)  # "input"/"output" -> device
    missing: dict[str, str] = field(default_factory=dict)  # why a step cannot run

    def needs(self, kind: Kind) -> Finding | None:
        """A skip when the device of ``kind`` was not found, else None."""
        if kind in self.chosen:
            return None
        return skip(f"not run: {self.missing.get(kind) or self.missing.get('portaudio', '')}")


def _label(device: DeviceInfo) -> str:
    return f"{device.label}, {device.hostapi}"


# ---- PortAudio and devices ---------------------------------------------------------------------


async def portaudio(probe: AudioProbe) -> Finding:
    try:
        probe.sd = await in_thread(load_sounddevice)
        probe.devices = await in_thread(list_devices)
    except VoiceCliError as exc:
        probe.missing["portaudio"] = "PortAudio is not usable"
        return fail(exc.message, exc.hint)
    version = str(probe.sd.get_portaudio_version()[1]).split(",")[0]  # without the revision
    return ok(f"{version} (sounddevice {probe.sd.__version__})", version=version)


async def device(probe: AudioProbe, kind: Kind) -> Finding:
    if probe.sd is None:
        probe.missing[kind] = "PortAudio is not usable"
        return skip("not run: PortAudio is not usable")
    spec = probe.input_spec if kind == "input" else probe.output_spec
    try:
        chosen = select_device(probe.devices, spec, kind)
    except AudioError as exc:
        probe.missing[kind] = f"no usable {kind} device"
        hint = exc.hint
        if not probe.devices:
            hint = f"no audio devices at all: {NO_PULSE_HINT}"
        return fail(exc.message, hint, devices=[d.to_json() for d in probe.devices])
    probe.chosen[kind] = chosen
    usable = [d for d in probe.devices if d.channels(kind) > 0]
    how = "the default" if not spec else f"chosen by {spec!r}"
    text = (
        f"{_label(chosen)}, {chosen.channels(kind)} ch, {chosen.default_samplerate:g} Hz "
        f"({how}; {len(usable)} {kind} device{'s' if len(usable) != 1 else ''})"
    )
    return ok(text, device=chosen.to_json(), available=[d.label for d in usable])


# ---- which rates really open -------------------------------------------------------------------


async def rates(probe: AudioProbe, kind: Kind) -> Finding:
    blocked = probe.needs(kind)
    if blocked is not None or probe.sd is None:
        return blocked or skip("not run")
    sd, chosen = probe.sd, probe.chosen[kind]
    results = await in_thread(lambda: {r: _open_error(sd, chosen, kind, r) for r in PROBE_RATES})
    opens = [rate for rate, error in results.items() if error is None]
    refused = {rate: error for rate, error in results.items() if error is not None}
    text = f"{_label(chosen)} opens {_khz(opens) or 'none'}"
    if refused:
        text += f"; refuses {_khz(list(refused))}"
    data = {"opens": opens, "refuses": {str(r): e for r, e in refused.items()}}
    if not opens:
        first = next(iter(refused.values()))
        return fail(f"{text} ({first})", _pick_hint(kind), **data)
    if RATE_HZ not in opens:
        return warn(text, f"not 48 kHz: audio is resampled from {_khz(opens[-1:])}", **data)
    return ok(text, **data)


def _khz(rates: list[int]) -> str:
    return ", ".join(f"{r / 1000:g}" for r in rates) + (" kHz" if rates else "")


def _pick_hint(kind: Kind) -> str:
    flag = "--input-device" if kind == "input" else "--output-device"
    return f"pick another with {flag} (`voicecli devices`); {NO_PULSE_HINT}"


def _open_error(sd: ModuleType, device: DeviceInfo, kind: Kind, rate: int) -> str | None:
    """Open, start and close a stream at ``rate``: None if it worked, else why not.

    check_input_settings can say yes to rates an ALSA plugin then refuses (or the reverse):
    opening for real is the honest test.
    """
    error: BaseException | None = None
    for channels in (1, 2)[: max(1, min(2, device.channels(kind)))]:
        try:
            _open_briefly(sd, device, kind, rate, channels)
        except (sd.PortAudioError, ValueError) as exc:
            error = exc
            continue
        return None
    assert error is not None
    return audio_error(error, kind, device, rate).message


def _open_briefly(sd: ModuleType, device: DeviceInfo, kind: Kind, rate: int, ch: int) -> None:
    def silent_output(outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        outdata.fill(0)

    def ignore_input(indata: Any, frames: int, time_info: Any, status: Any) -> None:
        pass

    stream_type = sd.InputStream if kind == "input" else sd.OutputStream
    callback = ignore_input if kind == "input" else silent_output
    stream = stream_type(
        device=device.index, samplerate=rate, channels=ch, dtype="int16", callback=callback
    )
    try:
        stream.start()
        stream.abort()
    finally:
        stream.close()


# ---- the 2 s recording -------------------------------------------------------------------------


@dataclass
class _Recorder:
    blocks: list[Pcm] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # ADC time of each block's first sample
    lost: str | None = None

    def on_block(self, pcm: Pcm, captured_s: float) -> None:
        self.blocks.append(pcm)
        self.times.append(captured_s)

    def on_lost(self, cause: str) -> None:
        self.lost = cause

    def audio(self) -> Pcm:
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, dtype=np.int16)


async def _open_capture(chosen: DeviceInfo, recorder: _Recorder) -> Capture:
    loop = asyncio.get_running_loop()
    capture = Capture(chosen, recorder.on_block, recorder.on_lost, loop)
    await capture.astart()
    return capture


async def recording(probe: AudioProbe) -> Finding:
    blocked = probe.needs("input")
    if blocked is not None:
        return blocked
    chosen, recorder = probe.chosen["input"], _Recorder()
    capture = await _open_capture(chosen, recorder)
    try:
        await asyncio.sleep(RECORD_S)
    finally:
        await capture.aclose()
    return judge_recording(recorder.audio(), recorder.lost, _label(chosen), capture.rate)


def judge_recording(pcm: Pcm, lost: str | None, label: str, device_rate: int) -> Finding:
    """Level, clipping and silence of a recording, as a user would want them said."""
    seconds = pcm.shape[0] / RATE_HZ
    if pcm.shape[0] == 0:
        cause = lost or f"no audio in {RECORD_S:g} s"
        return fail(f"{label}: {cause}", f"the microphone delivers nothing; {NO_PULSE_HINT}")
    rms, peak = rms_dbfs(pcm), peak_dbfs(pcm)
    clipped = int(np.count_nonzero(np.abs(pcm.astype(np.int32)) >= FULL_SCALE - 1))
    text = (
        f"{seconds:.1f} s from {label} at {device_rate / 1000:g} kHz: RMS {rms:.1f} dBFS, "
        f"peak {peak:.1f} dBFS, {clipped} clipped samples"
    )
    data = {
        "seconds": round(seconds, 3),
        "rms_dbfs": round(rms, 1),
        "peak_dbfs": round(peak, 1),
        "clipped_samples": clipped,
        "device_rate": device_rate,
    }
    if not np.any(pcm):
        return fail(
            f"{text}: digital silence",
            "the mic is muted or is not the one you speak into: unmute it (`pactl set-source-mute "
            "@DEFAULT_SOURCE@ 0`) or pick another with --input-device",
            **data,
        )
    if clipped > CLIP_SHARE * pcm.shape[0]:
        return warn(f"{text}: clipping", "lower the microphone gain (input volume)", **data)
    if peak < QUIET_PEAK_DBFS:
        return warn(
            f"{text}: very quiet",
            "if you spoke, the mic is muted, too far or the wrong one (--input-device); "
            "raise its gain",
            **data,
        )
    return ok(text, **data)


# ---- playing (--play) and the echo path (--echo-test) ------------------------------------------


class _Source:
    """Samples handed to Playback's pull (PortAudio thread): the signal, then silence.

    ``started_at`` is the DAC time of sample ``mark`` (the chirp's first sample, say).
    """

    def __init__(self, pcm: Pcm, loop: asyncio.AbstractEventLoop, mark: int = 0) -> None:
        self._pcm = pcm
        self._pos = 0
        self._mark = mark
        self._loop = loop
        self._lock = threading.Lock()
        self.started_at: float | None = None
        self.done = asyncio.Event()

    def pull(self, n: int, plays_at_s: float) -> Pcm:
        with self._lock:
            start, self._pos = self._pos, min(self._pos + n, self._pcm.shape[0])
        if start <= self._mark < start + n and self.started_at is None:
            self.started_at = plays_at_s + (self._mark - start) / RATE_HZ
        if start >= self._pcm.shape[0]:
            self._loop.call_soon_threadsafe(self.done.set)
        return self._pcm[start : start + n]


async def _play(
    chosen: DeviceInfo, source: _Source, lost: Callable[[str], None], limit_s: float
) -> Playback:
    playback = Playback(chosen, source.pull, lost, asyncio.get_running_loop())
    await playback.astart()
    try:
        async with asyncio.timeout(limit_s):
            await source.done.wait()
    except BaseException:
        await playback.aclose()
        raise
    return playback


async def play_tone(probe: AudioProbe, enabled: bool) -> Finding:
    if not enabled:
        return skip("not run: --play plays a short tone on the output device")
    blocked = probe.needs("output")
    if blocked is not None:
        return blocked
    chosen = probe.chosen["output"]
    problems: list[str] = []
    source = _Source(tone(TONE_HZ, TONE_S * 1000, dbfs=TONE_DBFS), asyncio.get_running_loop())
    playback = await _play(chosen, source, problems.append, TONE_S + 2.0)
    await playback.aclose()
    text = (
        f"played {TONE_S:g} s of {TONE_HZ:g} Hz at {TONE_DBFS:g} dBFS on {_label(chosen)} at "
        f"{playback.rate / 1000:g} kHz, {playback.underflows} underflows (heard nothing? check "
        "the volume, mute and --output-device)"
    )
    data = {"device_rate": playback.rate, "underflows": playback.underflows}
    if problems:
        return fail(f"{text}: {problems[0]}", _pick_hint("output"), **data)
    if playback.underflows:
        return warn(text, "the output stuttered: close other audio programs", **data)
    return ok(text, **data)


def chirp(
    from_hz: float = CHIRP_FROM_HZ,
    to_hz: float = CHIRP_TO_HZ,
    seconds: float = CHIRP_S,
    dbfs: float = CHIRP_DBFS,
) -> Pcm:
    """A logarithmic sweep (sharp cross-correlation peak), faded in and out like dsp.tone."""
    n = round(seconds * RATE_HZ)
    t = np.arange(n, dtype=np.float64) / RATE_HZ
    growth = math.log(to_hz / from_hz)
    phase = 2 * math.pi * from_hz * seconds / growth * (np.exp(t / seconds * growth) - 1)
    wave = np.sin(phase) * (FULL_SCALE * 10 ** (dbfs / 20))
    fade = min(round(0.005 * RATE_HZ), n // 2)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, fade, endpoint=False))
    wave[:fade] *= ramp
    wave[n - fade :] *= ramp[::-1]
    out: Pcm = np.clip(np.rint(wave), -32768, 32767).astype(np.int16)
    return out


@dataclass(frozen=True)
class Echo:
    r: float  # waveform correlation of the chirp with the recording where it was found
    delay_ms: float | None  # chirp played (DAC) -> heard (ADC); None without timestamps
    level_dbfs: float  # RMS of the recording where the chirp was found
    loss_db: float  # how much quieter than the chirp played


def find_echo(signal: Pcm, recorded: Pcm, recorded_start_s: float, played_s: float | None) -> Echo:
    """Where (and how loud) ``signal`` is in ``recorded``; times on the monotonic clock."""
    _, lag = normalized_xcorr_peak(signal, recorded)
    lag = max(0, lag)
    segment = recorded[lag : lag + signal.shape[0]]
    r, _ = normalized_xcorr_peak(signal[: segment.shape[0]], segment, max_lag_samples=0)
    heard_s = recorded_start_s + lag / RATE_HZ
    delay = None if played_s is None else (heard_s - played_s) * 1000
    level = rms_dbfs(segment)
    return Echo(r, delay, level, rms_dbfs(signal) - level)


async def echo_path(probe: AudioProbe, enabled: bool) -> Finding:
    if not enabled:
        return skip("not run: --echo-test plays a chirp and listens for it on the mic")
    blocked = probe.needs("input") or probe.needs("output")
    if blocked is not None:
        return blocked
    sweep = chirp()
    lead = silence(ECHO_LEAD_S * 1000)
    played = np.concatenate([lead, sweep, silence(ECHO_TAIL_S * 1000)])
    recorder = _Recorder()
    problems: list[str] = []
    capture = await _open_capture(probe.chosen["input"], recorder)
    try:
        source = _Source(played, asyncio.get_running_loop(), mark=lead.shape[0])
        playback = await _play(probe.chosen["output"], source, problems.append, 5.0)
        await playback.aclose()
    finally:
        await capture.aclose()
    if recorder.lost or problems or not recorder.blocks:
        cause = recorder.lost or (problems[0] if problems else "the mic delivered nothing")
        return fail(f"echo test failed: {cause}", NO_PULSE_HINT)
    echo = find_echo(sweep, recorder.audio(), recorder.times[0], source.started_at)
    return judge_echo(echo)


def judge_echo(echo: Echo) -> Finding:
    data = {
        "correlation": round(echo.r, 3),
        "delay_ms": None if echo.delay_ms is None else round(echo.delay_ms, 1),
        "level_dbfs": round(echo.level_dbfs, 1),
        "loss_db": round(echo.loss_db, 1),
    }
    if echo.r < ECHO_MIN_R:
        return ok(f"no echo: the mic did not pick up the chirp (r = {echo.r:.2f})", **data)
    delay = "" if echo.delay_ms is None else f" after {echo.delay_ms:.0f} ms"
    side = "below" if echo.loss_db >= 0 else "above"
    text = (
        f"echo{delay} at {echo.level_dbfs:.1f} dBFS, {abs(echo.loss_db):.1f} dB {side} "
        f"the chirp played (r = {echo.r:.2f})"
    )
    if echo.level_dbfs >= STRONG_ECHO_DBFS:
        return warn(
            f"strong {text}",
            "the assistant may hear itself and interrupt: use headphones, or "
            "`voicecli talk --duplex half`",
            **data,
        )
    return ok(text, **data)
