"""Pure audio helpers on int16 mono PCM: test signals, levels, resampling and similarity.

Nothing here does I/O or keeps a clock. Levels are in dBFS relative to int16 full scale
(32768), so a full-scale square wave is 0 dBFS RMS and a full-scale sine is about -3 dBFS RMS.
"""

from __future__ import annotations

import math
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from voicecli.audio.formats import RATE_HZ, Pcm

FULL_SCALE = 32768.0
# Reported for digital silence (and clamped to) instead of -inf: it keeps levels finite for
# arithmetic, comparisons and JSON, and sits far below anything a 16-bit source carries
# in practice (one LSB of constant offset is -90.3 dBFS).
SILENCE_FLOOR_DBFS = -120.0
FADE_MS = 5.0

FloatArray = npt.NDArray[np.float64]


def ms_to_samples(ms: float, rate: int = RATE_HZ) -> int:
    """Samples in ``ms`` milliseconds at ``rate``, rounded to the nearest sample."""
    return round(ms * rate / 1000)


def silence(ms: float, rate: int = RATE_HZ) -> Pcm:
    return np.zeros(ms_to_samples(ms, rate), dtype=np.int16)


def tone(hz: float, ms: float, *, rate: int = RATE_HZ, dbfs: float = -12.0) -> Pcm:
    """A sine of ``hz`` whose *peak* is ``dbfs`` (its RMS is about 3 dB lower).

    The first and last 5 ms are faded with a raised cosine so that the tone starts and ends
    without a click (a step from 0 to full amplitude is broadband and clearly audible).
    """
    n = ms_to_samples(ms, rate)
    t = np.arange(n, dtype=np.float64) / rate
    wave = np.sin(2 * np.pi * hz * t) * (FULL_SCALE * 10 ** (dbfs / 20))
    fade = min(ms_to_samples(FADE_MS, rate), n // 2)
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade, endpoint=False))
        wave[:fade] *= ramp
        wave[n - fade :] *= ramp[::-1]
    return _to_int16(wave)


def to_mono(samples: npt.NDArray[Any], channels: int) -> Pcm:
    """Interleaved (packed) s16 with ``channels`` channels -> mono int16.

    Accepts any shape (aiortc's Opus decoder hands out packed stereo as shape (1, 2 * n)) and,
    so that PyAV's loosely typed ``to_ndarray()`` can be passed straight in, any array type, but
    refuses a dtype other than int16 at run time (float samples would be silently mis-scaled).
    Channels are averaged rather than taking the left one: WebRTC peers usually send mono
    upmixed to identical channels, where the mean is exact (mean of a, a is a), and when the
    channels do differ the mean keeps what is on either side instead of dropping the right.
    Stereo uses integer maths (within 1 LSB of the float mean): this runs on every received
    20 ms frame on the event loop, where a float64 mean cost 23 µs a frame against 3.5 µs
    (bench/serve_connect.py profile: 15 % of the server's loop time).
    """
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    if samples.dtype != np.int16:
        raise ValueError(f"to_mono needs int16 (s16) samples, got {samples.dtype}")
    flat = samples.reshape(-1)
    if flat.shape[0] % channels:
        raise ValueError(f"{flat.shape[0]} samples is not a whole number of {channels}-ch frames")
    if channels == 1:
        return flat.astype(np.int16, copy=True)
    if channels == 2:  # the hot path: aiortc's decoder always gives stereo
        total: npt.NDArray[np.int32] = flat[0::2].astype(np.int32) + flat[1::2]
        mono: Pcm = ((total + (total < 0)) >> 1).astype(np.int16)  # halved toward zero
        return mono
    return _to_int16(flat.reshape(-1, channels).astype(np.float64).mean(axis=1))


class Resampler:
    """Streaming mono s16 resampler (libswresample through PyAV) for chunked audio.

    ``push`` returns what is ready so far (the filter holds back a few samples); ``flush``
    returns the rest. The concatenated output of any chunking equals one-shot ``resample``.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"rates must be positive, got {from_rate} -> {to_rate}")
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._av = av.AudioResampler(format="s16", layout="mono", rate=to_rate)
        self._flushed = False

    def push(self, pcm: Pcm) -> Pcm:
        if self._flushed:
            # libswresample is at end-of-stream after a flush; say so instead of av's EOFError.
            raise RuntimeError("Resampler.push after flush; create a new Resampler")
        if pcm.shape[0] == 0:
            return np.zeros(0, dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = self.from_rate
        return _frames_to_pcm(self._av.resample(frame))

    def flush(self) -> Pcm:
        """The samples still inside the filter; call once, at the end of the stream."""
        if self._flushed:
            return np.zeros(0, dtype=np.int16)
        self._flushed = True
        return _frames_to_pcm(self._av.resample(None))


def resample(pcm: Pcm, from_rate: int, to_rate: int) -> Pcm:
    """Mono int16 ``pcm`` at ``from_rate`` -> ``to_rate`` (a copy when the rates are equal)."""
    if from_rate == to_rate:
        return pcm.astype(np.int16, copy=True)
    resampler = Resampler(from_rate, to_rate)
    return np.concatenate([resampler.push(pcm), resampler.flush()])


def rms_dbfs(pcm: Pcm) -> float:
    """RMS level in dBFS; empty or all-zero input gives SILENCE_FLOOR_DBFS (never -inf)."""
    if pcm.shape[0] == 0:
        return SILENCE_FLOOR_DBFS
    # A dot product: a third of mean(square(x))'s cost; the meters call this on every frame.
    as_float = pcm.astype(np.float64)
    rms = math.sqrt(float(np.dot(as_float, as_float)) / pcm.shape[0])
    return _ratio_to_dbfs(rms / FULL_SCALE)


def peak_dbfs(pcm: Pcm) -> float:
    """Peak sample level in dBFS; empty or all-zero input gives SILENCE_FLOOR_DBFS."""
    if pcm.shape[0] == 0:
        return SILENCE_FLOOR_DBFS
    peak = int(np.max(np.abs(pcm.astype(np.int32))))
    return _ratio_to_dbfs(peak / FULL_SCALE)


def normalized_xcorr_peak(a: Pcm, b: Pcm, max_lag_samples: int | None = None) -> tuple[float, int]:
    """The strongest normalised cross-correlation of ``a`` and ``b`` and its lag.

    Returns (r, lag): r in -1..1 is the highest (most positive) correlation over the lags,
    normalised by the energies of the whole of ``a`` and ``b``; extra content in either lowers
    it, silence padding does not. The most positive rather than the largest magnitude is taken
    because a periodic signal correlates almost as strongly inverted half a period away, and
    "b is a copy of a" is what callers ask; an inverted copy scores low. ``lag`` > 0 means ``b``
    is late: b[n] ~ a[n - lag]. ``max_lag_samples`` limits the search to |lag| <= it.
    Silent (all-zero) input gives (0.0, 0).

    Waveform correlation is strict: it needs the phase preserved. Opus keeps it well enough
    for tones (r > 0.99 at 96 kb/s) and speech (r > 0.9); see envelope_correlation for a
    looser check.
    """
    return _xcorr(a.astype(np.float64), b.astype(np.float64), max_lag_samples)


def envelope_correlation(
    a: Pcm, b: Pcm, *, rate: int = RATE_HZ, window_ms: float = 10.0, max_lag_ms: float = 100.0
) -> tuple[float, int]:
    """Correlation of the loudness envelopes of ``a`` and ``b``: (r, lag in samples).

    The envelopes are per-window RMS, mean removed, so r says whether the two have the same
    rhythm of loud and quiet parts regardless of phase or spectral detail - robust to lossy
    codecs, resampling and small delays. The lag is a multiple of the window (b late when > 0).
    """
    window = max(1, ms_to_samples(window_ms, rate))
    env_a, env_b = _envelope(a, window), _envelope(b, window)
    max_lag = math.ceil(ms_to_samples(max_lag_ms, rate) / window)
    r, lag = _xcorr(env_a - env_a.mean(), env_b - env_b.mean(), max_lag)
    return r, lag * window


def _envelope(pcm: Pcm, window: int) -> FloatArray:
    """Per-window RMS (a trailing partial window is padded with zeros)."""
    padded = np.zeros(-(-pcm.shape[0] // window) * window, dtype=np.float64)
    padded[: pcm.shape[0]] = pcm
    env: FloatArray = np.sqrt(np.mean(np.square(padded.reshape(-1, window)), axis=1))
    return env


def _xcorr(a: FloatArray, b: FloatArray, max_lag: int | None) -> tuple[float, int]:
    energy = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    if energy == 0.0 or a.shape[0] == 0 or b.shape[0] == 0:
        return 0.0, 0
    size = a.shape[0] + b.shape[0] - 1
    nfft = 1 << (size - 1).bit_length()
    # corr[k] = sum_n b[n] * a[n - k]: circular indices k >= 0 are b late, the tail is b early.
    corr = np.fft.irfft(np.fft.rfft(b, nfft) * np.conj(np.fft.rfft(a, nfft)), nfft)
    lags = np.concatenate([np.arange(0, b.shape[0]), np.arange(-(a.shape[0] - 1), 0)])
    values = np.concatenate([corr[: b.shape[0]], corr[nfft - (a.shape[0] - 1) :]])
    if max_lag is not None:
        keep = np.abs(lags) <= max_lag
        lags, values = lags[keep], values[keep]
    best = int(np.argmax(values))
    return float(np.clip(values[best] / energy, -1.0, 1.0)), int(lags[best])


def _ratio_to_dbfs(ratio: float) -> float:
    if ratio <= 0.0:
        return SILENCE_FLOOR_DBFS
    return max(SILENCE_FLOOR_DBFS, 20 * math.log10(ratio))


def _to_int16(values: FloatArray) -> Pcm:
    return np.clip(np.rint(values), -32768, 32767).astype(np.int16)


def _frames_to_pcm(frames: list[av.AudioFrame]) -> Pcm:
    if not frames:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.int16)
