"""The playout buffer: received audio in, exactly-n-sample blocks out for the speaker callback.

aiortc's audio jitter buffer is replaced by a pass-through (``rtc/tuning.py``), so this object
owns de-jittering. It is pure: no I/O, no threads, no clock reads. Callers pass arrival times
(``loop.time()``) with each push; the output side's clock is the number of samples pulled.

Timeline. A push with a pts (samples at 48 kHz, aiortc's ``frame.pts``) is *paced* audio: one
sample per sample period at the sender. A pts jump forward is lost audio and becomes silence of
exactly that length (edges faded so it does not click); audio that overlaps what was already
queued is cut or dropped, so nothing is played twice. ``pts=None`` is *unpaced* audio contiguous
with the previous push (the WebSocket transport: bursts faster than real time). Unpaced audio
does not feed the jitter estimate, is never time-compressed and is bounded by ``max_backlog_ms``
instead of ``max_depth_ms``, so whole seconds pushed at once are all played.

Target delay (how much audio should be queued when the speaker asks for a block): the start and
floor is ``min_target_ms`` (40 ms: one 20 ms block plus one 20 ms frame of arrival slack). Each
paced frame's lateness is its transit time (arrival - pts) above the fastest transit seen (a
minimum that leaks upwards at ``base_leak_ms_per_s``, so clock drift and a lasting route change
are forgotten). The target is the floor plus the largest recent lateness: it grows at once,
holds for ``target_hold_s`` after the last comparable peak, then halves every
``shrink_half_life_s``. An underrun adds ``underrun_bump_ms`` (lateness that arrival times cannot
see, such as an irregular audio callback). ``jitter_ms`` in the stats is the RFC 3550
interarrival jitter, for the dashboard; the peak, not that mean, drives the target, because one
late frame is enough to run dry.

States: IDLE (nothing expected) → BUFFERING (silence until ``target`` is queued; the tail of a
stream plays after ``finish()`` or once no audio has come for a target's worth of pulls) →
PLAYING. Running dry while PLAYING counts an underrun (not after ``finish()``) and goes back to
BUFFERING; silence played meanwhile is remembered, so when the next frame shows a pts gap only
the part of the gap not already covered by that silence is filled, and losses do not add latency.

Drift control (paced audio only): the queued depth seen by each pull, smoothed over
``depth_smoothing_s``, is compared with the target. More than ``drift_band_ms`` above it for
``drift_hold_s`` starts trimming; more than ``drift_low_band_ms`` below it for
``drift_low_hold_s`` starts stretching (sooner: running dry is worse than 10 ms more delay).
Either goes on, one ``drift_step_ms`` step per ``drift_cooldown_s``, until the smoothed depth
crosses the target. A step removes or repeats audio at the quietest spot of the block,
crossfaded over ``edge_fade_ms``. Trims wait up to ``drift_patience_s`` for a spot below
``quiet_dbfs``; stretches do not wait. Depth more than ``skip_excess_ms`` above the target (a
stalled speaker) is dropped down to the target in one crossfaded splice.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from voicecli.audio.dsp import FULL_SCALE, ms_to_samples
from voicecli.audio.formats import RATE_HZ, Pcm

Gain = npt.NDArray[np.float32]

JITTER_GAIN = 1 / 16  # RFC 3550 §6.4.1 interarrival jitter smoothing
PEAK_REFRESH = 0.75  # a lateness this close to the held peak counts as the same peak again


class PlayoutState(StrEnum):
    IDLE = "idle"
    BUFFERING = "buffering"
    PLAYING = "playing"


@dataclass(frozen=True)
class PlayoutConfig:
    """Tuning; defaults fit WebRTC audio (20 ms frames, 20 ms output blocks) at 48 kHz."""

    rate: int = RATE_HZ
    min_target_ms: float = 40.0
    max_target_ms: float = 200.0
    target_hold_s: float = 10.0
    shrink_half_life_s: float = 5.0
    base_leak_ms_per_s: float = 20.0
    underrun_bump_ms: float = 10.0
    flush_fade_ms: float = 11.0
    edge_fade_ms: float = 2.5
    max_gap_ms: float = 1000.0  # a larger pts jump, either way, is a new stream: no filler
    restart_after_late: int = 5  # this many frames wholly behind in a row: a new stream
    drift_control: bool = True
    drift_band_ms: float = 10.0  # above the target: trim after drift_hold_s
    drift_hold_s: float = 1.0
    drift_low_band_ms: float = 2.5  # below it: stretch after drift_low_hold_s (sooner: dry is
    drift_low_hold_s: float = 0.2  # worse than late)
    drift_step_ms: float = 2.5
    drift_cooldown_s: float = 0.1
    drift_patience_s: float = 2.0
    quiet_dbfs: float = -40.0
    skip_excess_ms: float = 250.0
    depth_smoothing_s: float = 0.25
    max_depth_ms: float = 2000.0
    max_backlog_ms: float = 120_000.0

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"rate must be positive, got {self.rate}")
        if not 0 < self.min_target_ms <= self.max_target_ms <= self.max_depth_ms:
            raise ValueError("need 0 < min_target_ms <= max_target_ms <= max_depth_ms")
        if self.flush_fade_ms <= 0 or self.edge_fade_ms < 0 or self.drift_step_ms <= 0:
            raise ValueError("flush_fade_ms and drift_step_ms must be > 0, edge_fade_ms >= 0")

    def samples(self, ms: float) -> int:
        return ms_to_samples(ms, self.rate)


@dataclass(frozen=True)
class PlayoutStats:
    """A snapshot for the dashboard and the session. Durations in ms of 48 kHz samples."""

    state: PlayoutState
    depth_ms: float  # queued now, filler included
    target_ms: float
    jitter_ms: float  # RFC 3550 interarrival jitter of paced pushes
    underruns: int
    underrun_ms: float  # silence played because the queue ran dry, until playing resumed
    played_ms: float  # received audio played (never filler, stretch or underrun silence)
    since_mark_ms: int  # received audio consumed since mark(), floored: for audio_end_ms
    concealed_ms: float  # silence played in place of lost audio (pts gaps)
    trimmed_ms: float  # removed by drift control
    stretched_ms: float  # added by drift control
    dropped_ms: float  # received audio never played: late/duplicate, depth bound, skips
    flushed_ms: float  # received audio discarded by flush()
    last_pull_pts: int | None  # pts of the first received sample in the latest pull


class _Chunk:
    """Queued samples; ``pts`` of pcm[0], or None for filler (silence standing in for loss)."""

    __slots__ = ("off", "pcm", "pts")

    def __init__(self, pcm: Pcm, pts: int | None) -> None:
        self.pcm = pcm
        self.off = 0
        self.pts = pts


def _ramp_down(n: int) -> Gain:
    """Linear 1 → 0 gains without the end points: a faded non-zero sample never becomes 0."""
    gain: Gain = (np.arange(n, 0, -1, dtype=np.float32) / np.float32(n + 1)).astype(np.float32)
    return gain


def _cosine_down(n: int) -> Gain:
    """Raised-cosine 1 → 0 without the end points: smooth at both ends (the flush fade)."""
    phase = np.pi * np.arange(1, n + 1, dtype=np.float64) / (n + 1)
    gain: Gain = (0.5 + 0.5 * np.cos(phase)).astype(np.float32)
    return gain


def _scale(pcm: Pcm, gain: Gain) -> None:
    pcm[:] = (pcm * gain).astype(np.int16)


def _mix(fading_out: Pcm, fading_in: Pcm, down: Gain) -> Pcm:
    """Crossfade; a convex mix of two int16 signals cannot leave the int16 range."""
    mixed: Pcm = (fading_out * down + fading_in * (np.float32(1) - down)).astype(np.int16)
    return mixed


def _own(pcm: Pcm) -> Pcm:
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(f"playout needs 1-D int16 mono samples, got {pcm.dtype} {pcm.shape}")
    return pcm.copy()


class PlayoutBuffer:
    """FIFO of received audio with adaptive delay; see the module docstring for the rules."""

    def __init__(self, config: PlayoutConfig | None = None) -> None:
        self.config = cfg = config or PlayoutConfig()
        self._rate = cfg.rate
        self._edge = cfg.samples(cfg.edge_fade_ms)
        self._edge_down = _ramp_down(self._edge)
        self._edge_up: Gain = self._edge_down[::-1].copy()
        self._flush_len = max(1, cfg.samples(cfg.flush_fade_ms))
        self._step = max(1, cfg.samples(cfg.drift_step_ms))
        self._min_target = cfg.samples(cfg.min_target_ms)
        self._max_extra_s = (cfg.max_target_ms - cfg.min_target_ms) / 1000
        quiet_amp = FULL_SCALE * 10 ** (cfg.quiet_dbfs / 20)
        self._quiet_power = quiet_amp * quiet_amp
        self._chunks: deque[_Chunk] = deque()
        self._depth = 0
        self._state = PlayoutState.IDLE
        self._paced = True
        self._finishing = False
        self._recovering = False  # BUFFERING because the queue ran dry, not a fresh start
        self._write_end: int | None = None  # pts the next contiguous sample would carry
        self._debt = 0  # silence played since running dry: covers part of a later pts gap
        self._starve = 0  # silent pulls while buffering with audio queued, since a push
        self._late_streak = 0
        self._init_estimator()
        self._init_drift()
        self._init_counters()
        self._xf_src: Pcm | None = None  # samples fading out over the next output
        self._xf_gain: Gain = self._edge_down
        self._xf_pos = 0
        self._fade_in_next = False
        self._last_out = 0

    def _init_estimator(self) -> None:
        self._base: float | None = None  # smallest transit (arrival - pts) seen, leaking up
        self._base_at = 0.0
        self._prev_transit = 0.0
        self._last_arrival: float | None = None
        self._jitter_s = 0.0
        self._extra_s = 0.0  # target above the floor
        self._held_until = 0.0  # arrival time until which _extra_s does not decay

    def _init_drift(self) -> None:
        self._ema = 0.0  # smoothed depth seen by pulls, in samples
        self._high = 0  # samples pulled while above the band
        self._low = 0  # ... while below it
        self._correcting = 0  # +1 trimming, -1 stretching, 0 not
        self._waited = 0  # samples pulled while a trim waited for a quiet spot
        self._cooldown = 0

    def _init_counters(self) -> None:
        self._underruns = 0
        self._underrun_samples = 0
        self._played = 0
        self._concealed = 0
        self._trimmed = 0
        self._stretched = 0
        self._dropped = 0
        self._flushed = 0
        self._since_mark = 0
        self._mark_skip = 0  # received samples queued at mark(): not part of what follows it
        self._last_pull_pts: int | None = None

    # ---- producer side -------------------------------------------------------------------

    def push(self, pcm: Pcm, pts: int | None, arrival_s: float) -> None:
        """Queue decoded mono int16 audio. ``pts`` in samples, or None: contiguous, unpaced."""
        self._push_owned(_own(pcm), pts, arrival_s)

    def _push_owned(self, pcm: Pcm, pts: int | None, arrival_s: float) -> None:
        if pcm.shape[0] == 0:
            return
        arrival_s = float(arrival_s)
        self._decay_target(arrival_s)
        if pts is None:
            self._paced = False
            self._append(pcm, self._write_end or 0)
        elif not self._place(pcm, int(pts), arrival_s):
            return
        self._finishing = False
        self._debt = self._starve = 0
        if self._state is PlayoutState.IDLE:
            self._state = PlayoutState.BUFFERING
        self._enforce_bound()

    def _place(self, pcm: Pcm, pts: int, arrival_s: float) -> bool:
        """Put a paced frame on the timeline; False when all of it was already queued."""
        self._paced = True
        seam = self._is_new_stream(pts)
        if seam:  # the old stream's tail and the new one's head meet: fade both sides
            self._fade_queue_tail()
            self._write_end = pts
            self._late_streak = 0
            self._base = None
        self._observe(pts, arrival_s)
        end = self._write_end
        assert end is not None
        if pts + pcm.shape[0] <= end:
            self._dropped += pcm.shape[0]
            self._late_streak += 1
            return False
        self._late_streak = 0
        if pts < end:  # overlaps what is queued or played: keep only the new part
            self._dropped += end - pts
            pcm, pts = pcm[end - pts :], end
        elif pts > end:
            seam = self._fill_gap(pts - end)
        if seam and self._chunks:
            _scale(pcm[: self._edge], self._edge_up[: pcm.shape[0]])
        self._append(pcm, pts)
        return True

    def _is_new_stream(self, pts: int) -> bool:
        end = self._write_end
        if end is None:
            return True
        jump = abs(pts - end) > self.config.max_gap_ms * self._rate / 1000
        stuck = pts < end and self._late_streak >= self.config.restart_after_late
        return jump or stuck

    def _fill_gap(self, gap: int) -> bool:
        """Silence for lost audio, less what was already played as underrun silence."""
        if self._state is PlayoutState.IDLE:
            return False  # nothing is playing: starting later is better than leading silence
        fill = gap - self._debt
        if fill <= 0:
            return False
        filler = np.zeros(fill, dtype=np.int16)
        if self._chunks:
            self._fade_queue_tail()
        elif self._last_out and self._edge:  # the speaker stopped mid-wave at a block boundary
            k = min(self._edge, fill)
            filler[:k] = (self._last_out * self._edge_down[:k]).astype(np.int16)
        self._chunks.append(_Chunk(filler, None))
        self._depth += fill
        return True

    def _fade_queue_tail(self) -> None:
        tail = self._chunks[-1] if self._chunks else None
        if tail is None or tail.pts is None or not self._edge:
            return
        k = min(self._edge, tail.pcm.shape[0] - tail.off)
        _scale(tail.pcm[tail.pcm.shape[0] - k :], _ramp_down(k))

    def _append(self, pcm: Pcm, pts: int) -> None:
        self._chunks.append(_Chunk(pcm, pts))
        self._depth += pcm.shape[0]
        self._write_end = pts + pcm.shape[0]

    def _enforce_bound(self) -> None:
        limit_ms = self.config.max_depth_ms if self._paced else self.config.max_backlog_ms
        excess = self._depth - self.config.samples(limit_ms)
        if excess > 0:
            self._splice_drop(excess)

    # ---- target delay ----------------------------------------------------------------------

    def _decay_target(self, arrival_s: float) -> None:
        last, self._last_arrival = self._last_arrival, arrival_s
        if last is None:
            return
        start = max(last, self._held_until)
        if arrival_s > start:
            self._extra_s *= 2.0 ** (-(arrival_s - start) / self.config.shrink_half_life_s)

    def _observe(self, pts: int, arrival_s: float) -> None:
        transit = arrival_s - pts / self._rate
        if self._base is None:
            self._base, self._base_at, self._prev_transit = transit, arrival_s, transit
            return
        self._jitter_s += (abs(transit - self._prev_transit) - self._jitter_s) * JITTER_GAIN
        self._prev_transit = transit
        leak = max(0.0, arrival_s - self._base_at) * self.config.base_leak_ms_per_s / 1000
        self._base = min(transit, self._base + leak)
        self._base_at = arrival_s
        self._raise_target(transit - self._base)

    def _raise_target(self, extra_s: float) -> None:
        """Grow at once; a peak of a similar size holds the target up for target_hold_s, so
        that spikes a few seconds apart do not each find it decayed."""
        if extra_s >= PEAK_REFRESH * self._extra_s and extra_s > 0:
            self._held_until = (self._last_arrival or 0.0) + self.config.target_hold_s
        self._extra_s = min(max(self._extra_s, extra_s), self._max_extra_s)

    @property
    def _target(self) -> int:
        return self._min_target + round(self._extra_s * self._rate)

    # ---- consumer side ---------------------------------------------------------------------

    def pull(self, n: int) -> Pcm:
        """Exactly ``n`` int16 samples: audio, or silence while buffering, idle or dry."""
        if n <= 0:
            raise ValueError(f"pull needs n > 0, got {n}")
        out = np.zeros(n, dtype=np.int16)
        self._last_pull_pts = None
        if self._state is PlayoutState.PLAYING or self._ready_to_play():
            self._play_into(out)
        else:
            self._silent_pull(out)
        if self._xf_src is not None:
            self._apply_xfade(out)
        self._last_out = int(out[-1])
        return out

    def pull_with_pts(self, n: int) -> tuple[Pcm, int | None]:
        """``pull(n)`` and the pts of the first received sample in it (None: none in it)."""
        return self.pull(n), self._last_pull_pts

    def _ready_to_play(self) -> bool:
        if self._state is not PlayoutState.BUFFERING or not self._chunks:
            return False
        target = self._target
        if self._depth < target and not self._finishing and self._starve < target:
            return False
        self._state = PlayoutState.PLAYING
        self._recovering = False
        self._fade_in_next = True
        self._ema = float(self._depth)
        self._high = self._low = self._correcting = 0
        return True

    def _silent_pull(self, out: Pcm) -> None:
        n = out.shape[0]
        if self._state is PlayoutState.BUFFERING:
            if self._chunks:
                self._starve += n
            elif self._recovering:
                self._debt += n
            if self._recovering:
                self._underrun_samples += n
        self._ramp_from_last(out)

    def _ramp_from_last(self, out: Pcm) -> None:
        """Silence after a block that ended mid-wave: decay from its last value, no step."""
        if self._last_out and self._edge and self._xf_src is None:
            k = min(self._edge, out.shape[0])
            out[:k] = (self._last_out * self._edge_down[:k]).astype(np.int16)

    def _play_into(self, out: Pcm) -> None:
        n = out.shape[0]
        action = self._drift_action(n)
        if action is not None:  # a drift step always fills the block: it checked the depth
            position, change = action
            (self._trim_into if change > 0 else self._stretch_into)(out, position)
            got = n
        else:
            got, real, first = self._consume(n, out)
            self._played += real
            self._concealed += got - real
            self._last_pull_pts = first
        if self._fade_in_next:
            self._fade_in_next = False
            k = min(self._edge, got)
            _scale(out[:k], self._edge_up[:k])
        if got < n:
            self._run_dry(out, got)

    def _run_dry(self, out: Pcm, got: int) -> None:
        if got:
            k = min(self._edge, got)
            _scale(out[got - k : got], _ramp_down(k))
        else:
            self._ramp_from_last(out)
        if self._finishing:  # the stream ended on purpose: not an underrun
            self._state = PlayoutState.IDLE
            self._finishing = False
            return
        missing = out.shape[0] - got
        self._underruns += 1
        self._underrun_samples += missing
        self._debt = missing
        self._state = PlayoutState.BUFFERING
        self._recovering = True
        if self._paced:
            self._raise_target(self._extra_s + self.config.underrun_bump_ms / 1000)

    def _consume(self, k: int, out: Pcm | None) -> tuple[int, int, int | None]:
        """Take up to ``k`` samples from the head (into ``out`` if given).

        Returns (taken, received samples among them, pts of the first received one). Received
        samples count as consumed for since_mark (played or deliberately skipped, not flushed).
        """
        got = real = 0
        first: int | None = None
        chunks = self._chunks
        while got < k and chunks:
            chunk = chunks[0]
            take = min(chunk.pcm.shape[0] - chunk.off, k - got)
            if out is not None:
                out[got : got + take] = chunk.pcm[chunk.off : chunk.off + take]
            if chunk.pts is not None:
                if first is None:
                    first = chunk.pts + chunk.off
                real += take
            chunk.off += take
            got += take
            if chunk.off == chunk.pcm.shape[0]:
                chunks.popleft()
        self._depth -= got
        self._count_consumed(real)
        return got, real, first

    def _count_consumed(self, real: int) -> None:
        skipped = min(self._mark_skip, real)
        self._mark_skip -= skipped
        self._since_mark += real - skipped

    # ---- drift control ---------------------------------------------------------------------

    def _drift_action(self, n: int) -> tuple[int, int] | None:
        """Update the smoothed depth; maybe (position, +1 trim / -1 stretch) for this pull."""
        smoothing = self.config.depth_smoothing_s * self._rate
        self._ema += (self._depth - self._ema) * min(1.0, n / smoothing)
        if not (self.config.drift_control and self._paced) or self._finishing:
            self._correcting = 0
            return None
        error = self._ema - self._target
        self._steer(error, n)
        self._cooldown = max(0, self._cooldown - n)
        if not self._correcting or self._cooldown:
            return None
        if error > self.config.samples(self.config.skip_excess_ms):
            self._skip_to_target()
            return None
        return self._plan_step(n, self._correcting)

    def _steer(self, error: float, n: int) -> None:
        """Start correcting after the depth stays out of its band, stop once it crosses the
        target (hysteresis: correct all the way back, or the depth sits at the band's edge)."""
        cfg = self.config
        if self._correcting * error <= 0:
            self._correcting = self._waited = 0
        self._high = self._high + n if error > cfg.samples(cfg.drift_band_ms) else 0
        self._low = self._low + n if error < -cfg.samples(cfg.drift_low_band_ms) else 0
        if self._correcting:
            return
        if self._high >= cfg.drift_hold_s * self._rate:
            self._correcting = 1
        elif self._low >= cfg.drift_low_hold_s * self._rate:
            self._correcting = -1

    def _plan_step(self, n: int, change: int) -> tuple[int, int] | None:
        # A stretch does not wait for a quiet spot: running dry is worse than a soft repeat.
        force = change < 0 or self._waited >= self.config.drift_patience_s * self._rate
        position = self._quiet_spot(n, change, force)
        if position is None:
            self._waited += n
            return None
        self._cooldown = self.config.samples(self.config.drift_cooldown_s * 1000)
        self._ema -= change * self._step
        return position, change

    def _quiet_spot(self, n: int, change: int, force: bool) -> int | None:
        """Start of the quietest stretch of the block where a step fits, if quiet or forced."""
        span = n + change * self._step  # samples this pull takes from the queue
        last = n - self._edge - (self._step if change < 0 else 0) * 2
        if last < 0 or self._depth < span:
            return None
        x = self._peek_received(span)
        if x is None:  # filler in the way: let the gap play as it is
            return None
        window = self._step + self._edge
        power = np.concatenate(([0.0], np.cumsum(np.square(x, dtype=np.float64))))
        energy = power[window : window + last + 1] - power[: last + 1]
        position = int(np.argmin(energy))
        if force or energy[position] <= self._quiet_power * window:
            return position
        return None

    def _peek_received(self, k: int) -> Pcm | None:
        parts: list[Pcm] = []
        have = 0
        for chunk in self._chunks:
            if chunk.pts is None:
                return None
            parts.append(chunk.pcm[chunk.off : chunk.off + k - have])
            have += parts[-1].shape[0]
            if have >= k:
                return np.concatenate(parts)
        return None

    def _trim_into(self, out: Pcm, i: int) -> None:
        """Play n + step samples in n: drop ``step`` at i, crossfading across the cut."""
        n, step, edge = out.shape[0], self._step, self._edge
        x = np.empty(n + step, dtype=np.int16)
        _, _, self._last_pull_pts = self._consume(n + step, x)
        out[:i] = x[:i]
        out[i : i + edge] = _mix(x[i : i + edge], x[i + step : i + step + edge], self._edge_down)
        out[i + edge :] = x[i + step + edge :]
        self._played += n
        self._trimmed += step

    def _stretch_into(self, out: Pcm, i: int) -> None:
        """Play n - step samples in n: repeat ``step`` at i, crossfading into the repeat."""
        n, step, edge = out.shape[0], self._step, self._edge
        x = np.empty(n - step, dtype=np.int16)
        _, _, self._last_pull_pts = self._consume(n - step, x)
        out[: i + step] = x[: i + step]
        out[i + step : i + step + edge] = _mix(
            x[i + step : i + step + edge], x[i : i + edge], self._edge_down
        )
        out[i + step + edge :] = x[i + edge :]
        self._played += n - step
        self._stretched += step

    def _skip_to_target(self) -> None:
        excess = self._depth - self._target
        self._splice_drop(excess)
        self._ema -= excess
        self._correcting = 0

    def _splice_drop(self, k: int) -> None:
        """Drop the oldest ``k`` samples; while playing, crossfade the cut into what follows."""
        if self._state is PlayoutState.PLAYING and self._xf_src is None and self._edge:
            head = np.zeros(min(self._edge, k), dtype=np.int16)
            _, real, _ = self._consume(head.shape[0], head)
            self._dropped += real
            self._start_xfade(head, self._edge_down[: head.shape[0]])
            k -= head.shape[0]
        _, real, _ = self._consume(k, None)
        self._dropped += real

    def _start_xfade(self, src: Pcm, down: Gain) -> None:
        self._xf_src = (src * down).astype(np.int16)
        self._xf_gain = down
        self._xf_pos = 0

    def _apply_xfade(self, out: Pcm) -> None:
        src = self._xf_src
        assert src is not None
        pos = self._xf_pos
        k = min(out.shape[0], src.shape[0] - pos)
        gain_in = np.float32(1) - self._xf_gain[pos : pos + k]
        out[:k] = (out[:k] * gain_in).astype(np.int16) + src[pos : pos + k]
        self._xf_pos = pos + k
        if self._xf_pos >= src.shape[0]:
            self._xf_src = None

    # ---- control ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Barge-in: the next pull fades what was playing out over ``flush_fade_ms``, then
        silence until new audio arrives; everything queued is dropped. What was dropped unheard
        is the rise of ``stats.flushed_ms`` (the fade counts as played)."""
        if self._state is PlayoutState.PLAYING and self._chunks and self._xf_src is None:
            head = np.zeros(min(self._flush_len, self._depth), dtype=np.int16)
            _, real, _ = self._consume(head.shape[0], head)
            self._played += real  # it is heard, fading
            self._start_xfade(head, _cosine_down(head.shape[0]))
        elif self._last_out and self._xf_src is None and self._edge:
            self._start_xfade(np.full(self._edge, self._last_out, np.int16), self._edge_down)
        self._flushed += sum(c.pcm.shape[0] - c.off for c in self._chunks if c.pts is not None)
        self._chunks.clear()
        self._depth = 0
        self._mark_skip = 0
        self._state = PlayoutState.IDLE
        self._finishing = self._recovering = self._fade_in_next = False
        self._debt = self._starve = 0

    def finish(self) -> None:
        """No more audio for now (end of a response): play out what is queued without waiting
        for the target, and running dry afterwards is not an underrun. A push cancels it."""
        if self._state is not PlayoutState.IDLE:
            self._finishing = True

    def mark(self) -> None:
        """Start counting ``since_mark_ms`` from audio pushed after this call."""
        self._since_mark = 0
        self._mark_skip = sum(c.pcm.shape[0] - c.off for c in self._chunks if c.pts is not None)

    @property
    def stats(self) -> PlayoutStats:
        ms = 1000 / self._rate
        return PlayoutStats(
            state=self._state,
            depth_ms=self._depth * ms,
            target_ms=self._target * ms,
            jitter_ms=self._jitter_s * 1000,
            underruns=self._underruns,
            underrun_ms=self._underrun_samples * ms,
            played_ms=self._played * ms,
            since_mark_ms=self._since_mark * 1000 // self._rate,
            concealed_ms=self._concealed * ms,
            trimmed_ms=self._trimmed * ms,
            stretched_ms=self._stretched * ms,
            dropped_ms=self._dropped * ms,
            flushed_ms=self._flushed * ms,
            last_pull_pts=self._last_pull_pts,
        )


class SharedPlayout:
    """A PlayoutBuffer shared by the event loop (push, flush, mark) and the audio callback
    thread (pull). The input copy happens outside the lock; inside it runs one buffer call
    (a few µs, see bench/playout.py), far below the 10 ms block and the GIL's 5 ms switch."""

    def __init__(self, config: PlayoutConfig | None = None) -> None:
        self._buffer = PlayoutBuffer(config)
        self._lock = threading.Lock()

    @property
    def config(self) -> PlayoutConfig:
        return self._buffer.config

    def push(self, pcm: Pcm, pts: int | None, arrival_s: float) -> None:
        owned = _own(pcm)
        with self._lock:
            self._buffer._push_owned(owned, pts, arrival_s)

    def pull(self, n: int) -> Pcm:
        with self._lock:
            return self._buffer.pull(n)

    def pull_with_pts(self, n: int) -> tuple[Pcm, int | None]:
        with self._lock:
            return self._buffer.pull_with_pts(n)

    def flush(self) -> None:
        with self._lock:
            self._buffer.flush()

    def finish(self) -> None:
        with self._lock:
            self._buffer.finish()

    def mark(self) -> None:
        with self._lock:
            self._buffer.mark()

    @property
    def stats(self) -> PlayoutStats:
        with self._lock:
            return self._buffer.stats
