"""voicecli.audio.playout: what a listener hears from the playout buffer.

Invariants are property-based (hypothesis); latency, jitter and drift behaviour are checked in
simulated runs: a sender producing 20 ms frames (optionally late or on a faster/slower clock),
a FIFO network (late frames delay the ones behind them, no reordering) and a speaker callback
pulling 20 ms blocks on its own clock, all interleaved by event time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecli.audio.dsp import ms_to_samples, silence, tone
from voicecli.audio.formats import FRAME_SAMPLES, RATE_HZ, Pcm
from voicecli.audio.playout import (
    PlayoutBuffer,
    PlayoutConfig,
    PlayoutState,
    SharedPlayout,
)

N = FRAME_SAMPLES  # 960: the speaker callback's block and the usual frame
MS = 1000 / RATE_HZ
# Edges unfaded and drift control off: every received sample leaves as an exact copy, so
# sample values can identify samples (a counting signal: value = 1000 + index).
EXACT = PlayoutConfig(edge_fade_ms=0.0, drift_control=False)
SMALL = PlayoutConfig(max_target_ms=80.0, max_depth_ms=120.0, max_gap_ms=50.0)


def counting(start: int, n: int) -> Pcm:
    return np.arange(1000 + start, 1000 + start + n, dtype=np.int16)


def speech_like(seconds: float, seed: int = 1) -> Pcm:
    """Hann-shaped noise bursts of 80-300 ms with 40-200 ms pauses, like speech's rhythm."""
    rng = np.random.default_rng(seed)
    parts: list[Pcm] = []
    total = 0
    while total < seconds * RATE_HZ:
        n = ms_to_samples(float(rng.integers(80, 300)))
        burst = np.clip(rng.normal(0, 6000, n) * np.hanning(n), -32768, 32767)
        parts += [burst.astype(np.int16), silence(float(rng.integers(40, 200)))]
        total += n + parts[-1].shape[0]
    return np.concatenate(parts)


def frames_of(pcm: Pcm, n: int = N) -> list[Pcm]:
    return [pcm[i : i + n] for i in range(0, pcm.shape[0] - n + 1, n)]


def pull_all(buffer: PlayoutBuffer, blocks: int, n: int = N) -> Pcm:
    return np.concatenate([buffer.pull(n) for _ in range(blocks)])


def zero_runs(pcm: Pcm) -> list[int]:
    """Lengths of the runs of zeros strictly between non-zero samples."""
    nonzero = np.flatnonzero(pcm)
    gaps = np.diff(nonzero) - 1
    return [int(g) for g in gaps if g > 0]


@dataclass
class Run:
    buffer: PlayoutBuffer
    out: Pcm
    depths_ms: list[float] = field(default_factory=list)  # seen by each pull, before it
    targets_ms: list[float] = field(default_factory=list)


def simulate(
    signal: Pcm,
    *,
    speed: float = 1.0,
    delays_s: npt.NDArray[np.float64] | None = None,
    phase_s: float = 0.0071,
    config: PlayoutConfig | None = None,
) -> Run:
    """Send ``signal`` as 20 ms frames on a clock ``speed`` times the speaker's."""
    frames = frames_of(signal)
    send = np.arange(len(frames)) * (0.02 / speed)
    late = np.zeros(len(frames))
    if delays_s is not None:
        late[: delays_s.shape[0]] = delays_s[: len(frames)]
    arrival = np.maximum.accumulate(send + late)  # FIFO: a late frame holds up the next ones
    pulls = int((arrival[-1] - phase_s) / 0.02) - 1  # stop while the sender is still sending
    events = [(float(a), 0, k) for k, a in enumerate(arrival)]
    events += [(j * 0.02 + phase_s, 1, j) for j in range(pulls)]
    run = Run(PlayoutBuffer(config), np.zeros(0, np.int16))
    out: list[Pcm] = []
    for at, kind, k in sorted(events):
        if kind == 0:
            run.buffer.push(frames[k], k * N, at)
        else:
            stats = run.buffer.stats
            run.depths_ms.append(stats.depth_ms)
            run.targets_ms.append(stats.target_ms)
            out.append(run.buffer.pull(N))
    run.out = np.concatenate(out)
    return run


# ---- invariants over arbitrary use -----------------------------------------------------------


def op_lists(max_push: int, max_ops: int) -> st.SearchStrategy[list[tuple[object, ...]]]:
    push = st.tuples(
        st.just("push"),
        st.integers(1, max_push),
        st.sampled_from(["next", "gap", "back", "none", "jump"]),
        st.integers(1, 3000),
        st.floats(0.0, 0.1),
    )
    other = st.one_of(
        st.tuples(st.just("pull"), st.integers(1, 2000)),
        st.tuples(st.sampled_from(["flush", "mark", "finish"])),
    )
    return st.lists(st.one_of(push, other), max_size=max_ops)


@dataclass
class Driver:
    """Plays an op list against a buffer and checks the invariants after every op."""

    buffer: PlayoutBuffer
    next_pts: int = 0
    now: float = 0.0
    pushed: int = 0
    pushed_since_mark: int = 0
    index: int = 0  # of the counting signal

    def push(self, n: int, mode: str, offset: int, dt: float) -> None:
        pts: int | None = {
            "next": self.next_pts,
            "gap": self.next_pts + offset,
            "back": self.next_pts - offset,
            "none": None,
            "jump": self.next_pts + 10 * RATE_HZ,
        }[mode]
        self.now += dt
        self.buffer.push(counting(self.index % 30_000, n), pts, self.now)
        self.index += n
        self.next_pts = (self.next_pts if pts is None else pts) + n
        self.pushed += n
        self.pushed_since_mark += n
        config = self.buffer.config
        if pts is not None:  # paced audio is bounded; a stalled speaker cannot grow it
            assert self.buffer.stats.depth_ms <= config.max_depth_ms

    def pull(self, n: int) -> Pcm:
        out = self.buffer.pull(n)
        assert out.dtype == np.int16 and out.shape == (n,)
        return out

    def run(self, ops: list[tuple[object, ...]]) -> list[Pcm]:
        outs: list[Pcm] = []
        for op in ops:
            if op[0] == "push":
                _, n, mode, offset, dt = op
                assert isinstance(n, int) and isinstance(offset, int)
                assert isinstance(mode, str) and isinstance(dt, float)
                self.push(n, mode, offset, dt)
            elif op[0] == "pull":
                assert isinstance(op[1], int)
                outs.append(self.pull(op[1]))
            elif op[0] == "mark":
                self.buffer.mark()
                self.pushed_since_mark = 0
            else:
                getattr(self.buffer, str(op[0]))()
            self.check()
        return outs

    def check(self) -> None:
        stats = self.buffer.stats
        assert stats.played_ms <= self.pushed * MS + 1e-6
        assert stats.since_mark_ms <= self.pushed_since_mark * MS + 1e-6
        gone = stats.played_ms + stats.trimmed_ms + stats.dropped_ms + stats.flushed_ms
        assert gone <= self.pushed * MS + 1e-6
        config = self.buffer.config
        assert config.min_target_ms <= stats.target_ms <= config.max_target_ms + MS


@settings(max_examples=150, deadline=None)
@given(ops=op_lists(2000, 60), config=st.sampled_from([PlayoutConfig(), SMALL, EXACT]))
def test_any_use_gives_exact_blocks_and_never_invents_audio(
    ops: list[tuple[object, ...]], config: PlayoutConfig
) -> None:
    driver = Driver(PlayoutBuffer(config))
    driver.run(ops)
    driver.buffer.flush()
    stats = driver.buffer.stats
    # Every received sample is accounted for exactly once once the queue is flushed.
    gone = stats.played_ms + stats.trimmed_ms + stats.dropped_ms + stats.flushed_ms
    assert gone == pytest.approx(driver.pushed * MS, abs=1e-6)
    assert stats.depth_ms == 0


@settings(max_examples=150, deadline=None)
@given(ops=op_lists(1000, 29).map(lambda ops: [op for op in ops if op[0] != "flush"]))
def test_no_received_sample_is_played_twice_or_out_of_order(
    ops: list[tuple[object, ...]],
) -> None:
    # At most 29 000 samples: the counting signal stays unique (flush is left out: its fade
    # scales the samples it plays, so values would no longer name them).
    driver = Driver(PlayoutBuffer(EXACT))
    played = np.concatenate([*driver.run(ops), np.zeros(0, np.int16)])
    audible = played[played != 0].astype(np.int64)
    assert np.all(np.diff(audible) > 0)  # counting signal: strictly increasing, so unique
    assert audible.shape[0] * MS == pytest.approx(driver.buffer.stats.played_ms)


@settings(max_examples=100, deadline=None)
@given(
    sizes=st.lists(st.integers(100, 1500), min_size=2, max_size=12),
    gaps=st.lists(st.integers(0, 2000), min_size=12, max_size=12),
)
def test_pts_gaps_become_silence_of_exactly_their_length_in_order(
    sizes: list[int], gaps: list[int]
) -> None:
    buffer = PlayoutBuffer()  # production fades: faded edges never reach zero
    pts, index, expected_gaps = 0, 0, []
    for k, n in enumerate(sizes):
        gap = gaps[k] if k else 0
        pts += gap
        if gap:
            expected_gaps.append(gap)
        buffer.push(counting(index, n) + 3000, pts, 0.0)
        pts, index = pts + n, index + n
    total = pts
    out = pull_all(buffer, total // N + 4)
    assert zero_runs(out) == expected_gaps
    # Every sample plays once; when the queue ends on a block boundary, the next block ramps
    # down from the last sample (2.5 ms, not received audio) instead of stepping to zero.
    ramp = buffer.config.samples(buffer.config.edge_fade_ms)
    assert np.count_nonzero(out) - sum(sizes) in (0, ramp)
    stats = buffer.stats
    assert stats.played_ms == pytest.approx(sum(sizes) * MS)
    assert stats.concealed_ms == pytest.approx(sum(expected_gaps) * MS)
    assert stats.underruns == 1  # running dry once at the end, nothing before


# ---- timeline: late, duplicate, lost, restarted -------------------------------------------


def test_late_duplicate_and_overlapping_frames_are_not_replayed() -> None:
    buffer = PlayoutBuffer(EXACT)
    buffer.push(counting(0, N), 0, 0.0)
    buffer.push(counting(0, N), 0, 0.001)  # duplicate
    buffer.push(counting(N, N), N, 0.02)
    buffer.push(counting(N + N // 2, N), N + N // 2, 0.021)  # overlaps: half old, half new
    out = pull_all(buffer, 4)
    audible = out[out != 0].astype(np.int64)
    assert np.array_equal(audible, 1000 + np.arange(N * 2 + N // 2))
    assert buffer.stats.dropped_ms == pytest.approx((N + N // 2) * MS)


def test_a_restarted_stream_plays_instead_of_being_stuck() -> None:
    buffer = PlayoutBuffer(EXACT)
    for k in range(10):  # an old stream, 10 s in
        buffer.push(counting(k * N, N), 480_000 + k * N, k * 0.02)
    pull_all(buffer, 12)
    # A new track starts its pts at 0 (10 s back): it must play, not be dropped as late.
    new = tone(440, 200)
    for k, frame in enumerate(frames_of(new)):
        buffer.push(frame, k * N, 0.3 + k * 0.02)
    out = pull_all(buffer, 12)
    assert buffer.stats.played_ms == pytest.approx((10 * N + new.shape[0]) * MS)
    assert np.count_nonzero(out) > new.shape[0] * 0.9


def test_a_small_pts_step_back_is_a_new_stream_after_a_few_late_frames() -> None:
    config = PlayoutConfig(restart_after_late=3, edge_fade_ms=0.0)
    buffer = PlayoutBuffer(config)
    for k in range(5):
        buffer.push(counting(k * N, N), 10 * N + k * N, k * 0.02)
    for k in range(8):  # a new stream at pts 0: only 200 ms behind, never catching up
        buffer.push(counting(5 * N + k * N, N), k * N, 0.1 + k * 0.02)
    stats = buffer.stats
    assert stats.dropped_ms == pytest.approx(3 * 20.0)  # three late frames, then accepted
    assert stats.depth_ms == pytest.approx((5 + 5) * 20.0)


def test_loss_while_dry_is_not_added_as_extra_delay() -> None:
    buffer = PlayoutBuffer()
    for k in range(2):
        buffer.push(tone(440, 20), k * N, k * 0.02)
    pull_all(buffer, 2)  # playing; the queue is now empty
    silent = pull_all(buffer, 3)  # frames 2-4 are lost: 60 ms of underrun silence
    assert buffer.stats.underruns == 1 and not np.any(silent[N:])
    # Frame 5 arrives: its 60 ms gap was already played as silence, so nothing is filled.
    buffer.push(tone(440, 20), 5 * N, 0.12)
    assert buffer.stats.depth_ms == pytest.approx(20.0)
    buffer.push(tone(440, 20), 6 * N, 0.14)
    assert buffer.stats.depth_ms == pytest.approx(40.0)  # back at the target, not 100 ms


def test_a_gap_longer_than_max_gap_adds_no_silence() -> None:
    buffer = PlayoutBuffer()
    buffer.push(tone(440, 20), 0, 0.0)
    buffer.push(tone(440, 20), N + 5 * RATE_HZ, 0.02)  # 5 s later in pts: a new stream
    assert buffer.stats.depth_ms == pytest.approx(40.0)


# ---- flush, finish, counters --------------------------------------------------------------


def playing_tone(seconds: float = 0.2) -> tuple[PlayoutBuffer, Pcm]:
    buffer = PlayoutBuffer()
    signal = tone(440, seconds * 1000, dbfs=-6)
    for k, frame in enumerate(frames_of(signal)):
        buffer.push(frame, k * N, k * 0.02)
    return buffer, pull_all(buffer, 3)


def test_flush_fades_out_within_one_block_then_silence_until_new_audio() -> None:
    buffer, before = playing_tone()
    queued = buffer.stats.depth_ms
    buffer.flush()
    after = pull_all(buffer, 3)
    fade = buffer.config.samples(buffer.config.flush_fade_ms)
    max_step = int(np.max(np.abs(np.diff(before.astype(np.int32)))))
    assert abs(int(after[0]) - int(before[-1])) <= max_step  # no click where the fade starts
    assert np.max(np.abs(np.diff(after[:fade].astype(np.int32)))) <= max_step
    assert not np.any(after[fade:])
    # It is the audio that fades (the tone goes on, 440 Hz: about 10 zero crossings in
    # 11 ms), not a ramp from the last sample; and it gets quieter as it goes.
    crossings = np.count_nonzero(np.diff(np.signbit(after[:fade])))
    assert crossings >= 6
    quarter = fade // 4
    assert np.abs(after[:quarter]).max() > 4 * np.abs(after[3 * quarter : fade]).max()
    assert 10 * RATE_HZ // 1000 <= fade <= 12 * RATE_HZ // 1000
    stats = buffer.stats
    assert stats.state is PlayoutState.IDLE and stats.depth_ms == 0
    assert stats.flushed_ms == pytest.approx(queued - buffer.config.flush_fade_ms)
    buffer.push(tone(440, 60), 999 * N, 1.0)  # the next response
    assert np.any(pull_all(buffer, 2))


def test_flush_while_nothing_plays_is_silent() -> None:
    buffer = PlayoutBuffer()
    buffer.push(tone(440, 20), 0, 0.0)  # buffering: nothing was heard yet
    buffer.flush()
    assert not np.any(pull_all(buffer, 2))
    assert buffer.stats.played_ms == 0


def test_played_ms_counts_received_audio_only() -> None:
    buffer = PlayoutBuffer()
    buffer.push(tone(440, 100), 0, 0.0)
    buffer.push(tone(440, 100), ms_to_samples(150), 0.15)  # 50 ms lost before it
    out = pull_all(buffer, 20)  # 400 ms: prebuffer, 250 ms of audio and filler, then dry
    stats = buffer.stats
    assert out.shape[0] == 20 * N
    assert stats.played_ms == pytest.approx(200.0)
    assert stats.concealed_ms == pytest.approx(50.0)
    assert stats.underrun_ms == pytest.approx(400.0 - 250.0)


def test_since_mark_counts_only_audio_pushed_after_mark_and_not_flushed() -> None:
    buffer = PlayoutBuffer()
    buffer.push(tone(440, 100), 0, 0.0)  # the previous response, still queued
    buffer.mark()
    buffer.push(tone(440, 200), ms_to_samples(100), 0.1)
    pull_all(buffer, 7)  # 140 ms played: 100 ms of the old response, 40 ms of the new
    assert buffer.stats.since_mark_ms == 40
    buffer.flush()  # barge-in: what was dropped was never heard
    pull_all(buffer, 2)
    assert buffer.stats.since_mark_ms == 40 + round(buffer.config.flush_fade_ms)
    buffer.mark()
    assert buffer.stats.since_mark_ms == 0


def test_finish_plays_a_short_tail_without_an_underrun() -> None:
    buffer = PlayoutBuffer()
    buffer.push(tone(440, 10), None, 0.0)  # less than the target: would wait to prebuffer
    buffer.finish()
    out = pull_all(buffer, 3)
    stats = buffer.stats
    assert np.count_nonzero(out) > 0 and stats.played_ms == pytest.approx(10.0)
    assert stats.underruns == 0 and stats.state is PlayoutState.IDLE


def test_a_stalled_tail_plays_after_a_targets_worth_of_waiting() -> None:
    buffer = PlayoutBuffer()
    buffer.push(tone(440, 10), 0, 0.0)  # nothing follows, and nobody calls finish()
    out = pull_all(buffer, 4)
    assert buffer.stats.played_ms == pytest.approx(10.0)
    assert not np.any(out[: 2 * N]) and np.any(out[2 * N :])


def test_underrun_is_counted_and_playback_waits_for_the_target_again() -> None:
    buffer, _ = playing_tone(0.06)  # 3 frames sent 20 ms apart, 3 blocks pulled: dry now
    assert not np.any(buffer.pull(N)) and buffer.stats.underruns == 1
    for k in range(3, 11):  # the next frames arrive together, 140 ms late or more
        buffer.push(tone(440, 20), k * N, 0.2)
    stats = buffer.stats
    assert stats.target_ms >= 40.0 + 130.0  # learned from the late frames (140 ms)
    assert stats.depth_ms < stats.target_ms
    assert not np.any(buffer.pull(N))  # still rebuilding the cushion
    buffer.push(tone(440, 20), 11 * N, 0.21)
    buffer.push(tone(440, 20), 12 * N, 0.22)
    assert buffer.stats.depth_ms >= buffer.stats.target_ms
    assert np.any(buffer.pull(N))
    assert buffer.stats.underruns == 1


def test_pull_with_pts_names_the_first_received_sample_of_the_block() -> None:
    buffer = PlayoutBuffer(EXACT)
    for k in range(3):
        buffer.push(counting(k * N, N), 5000 + k * N, 0.0)
    pcm, pts = buffer.pull_with_pts(N // 2)
    assert pts == 5000 == buffer.stats.last_pull_pts and pcm.shape == (N // 2,)
    _, pts = buffer.pull_with_pts(N)
    assert pts == 5000 + N // 2
    pull_all(buffer, 3)
    _, pts = buffer.pull_with_pts(N)
    assert pts is None  # dry: nothing received in that block


def test_bad_input_is_refused() -> None:
    buffer = PlayoutBuffer()
    with pytest.raises(ValueError, match="int16"):
        buffer.push(np.zeros(N, np.float32), 0, 0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-D"):
        buffer.push(np.zeros((2, N), np.int16), 0, 0.0)
    with pytest.raises(ValueError, match="n > 0"):
        buffer.pull(0)
    with pytest.raises(ValueError):
        PlayoutConfig(min_target_ms=300.0)


def sine(start: int, n: int) -> Pcm:
    """A raw 440 Hz sine (no fades) at -6 dBFS, samples start..start+n of one long wave."""
    t = np.arange(start, start + n) / RATE_HZ
    return (16384 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


SINE_STEP = 16384 * 2 * np.pi * 440 / RATE_HZ  # the largest sample-to-sample change


def lost_frame(buffer: PlayoutBuffer) -> Pcm:
    for k in (0, 1, 3, 4):  # frame 2 lost; the queue also runs dry at a block boundary
        buffer.push(sine(k * N, N), k * N, 0.0)
    return pull_all(buffer, 8)


def dry_mid_block(buffer: PlayoutBuffer) -> Pcm:
    for k in range(3):
        buffer.push(sine(k * N, N), k * N, k * 0.02)
    return pull_all(buffer, 6, n=700)


def late_then_resume(buffer: PlayoutBuffer) -> Pcm:
    for k in range(2):
        buffer.push(sine(k * N, N), k * N, 0.0)
    out = [pull_all(buffer, 3)]
    for k in range(2, 12):  # late, not lost: playback resumes mid-wave
        buffer.push(sine(k * N, N), k * N, 0.3)
    return np.concatenate([*out, pull_all(buffer, 12)])


def new_stream_seam(buffer: PlayoutBuffer) -> Pcm:
    for k in range(3):
        buffer.push(sine(k * N, N), k * N, 0.0)
    for k in range(3):  # a new stream joins the queue mid-wave
        buffer.push(sine(500 + k * N, N), 10 * RATE_HZ + k * N, 0.0)
    return pull_all(buffer, 8)


def stalled_speaker(buffer: PlayoutBuffer) -> Pcm:
    for k in range(3):
        buffer.push(sine(k * N, N), k * N, k * 0.02)
    out = [pull_all(buffer, 2)]
    for k in range(3, 150):  # 3 s with no pulls: the oldest audio is dropped, then skipped
        buffer.push(sine(k * N, N), k * N, k * 0.02)
    return np.concatenate([*out, pull_all(buffer, 60)])


@pytest.mark.parametrize(
    "scenario", [lost_frame, dry_mid_block, late_then_resume, new_stream_seam, stalled_speaker]
)
def test_going_silent_and_coming_back_does_not_click(scenario: Callable[..., Pcm]) -> None:
    out = scenario(PlayoutBuffer()).astype(np.int32)
    assert np.count_nonzero(out) > 2 * N
    assert np.max(np.abs(np.diff(out))) <= 1.2 * SINE_STEP  # a cut mid-wave jumps ~16x more


# ---- memory bound and unpaced (WebSocket) bursts ------------------------------------------


def test_a_stalled_speaker_cannot_grow_the_queue_and_recovers_fast() -> None:
    buffer = PlayoutBuffer()
    signal = speech_like(5.0)
    frames = frames_of(signal)
    for k, frame in enumerate(frames[:10]):
        buffer.push(frame, k * N, k * 0.02)
    pull_all(buffer, 5)  # playing
    for k, frame in enumerate(frames[10:], start=10):  # the speaker stops calling back
        buffer.push(frame, k * N, k * 0.02)
    stats = buffer.stats
    assert stats.depth_ms == pytest.approx(buffer.config.max_depth_ms)
    assert stats.dropped_ms == pytest.approx(len(frames) * 20.0 - 100.0 - 2000.0)
    pull_all(buffer, 60)  # it resumes: within ~1 s the backlog is cut down to the target
    assert buffer.stats.depth_ms <= buffer.config.min_target_ms + 20.0


def test_an_unpaced_burst_of_seconds_is_played_in_full() -> None:
    buffer = PlayoutBuffer()
    first, second = speech_like(8.0, seed=2), speech_like(3.0, seed=3)
    buffer.push(first, None, 0.0)  # a WebSocket response arrives much faster than real time
    out = pull_all(buffer, first.shape[0] // N + 10)
    buffer.push(second, None, 30.0)  # the next one, after a long pause
    out = np.concatenate([out, pull_all(buffer, second.shape[0] // N + 10)])
    stats = buffer.stats
    total = first.shape[0] + second.shape[0]
    assert stats.played_ms == pytest.approx(total * MS)
    assert stats.trimmed_ms == stats.dropped_ms == stats.stretched_ms == 0
    assert stats.target_ms == buffer.config.min_target_ms  # not mistaken for a jitter spike
    assert np.count_nonzero(out) >= np.count_nonzero(first) + np.count_nonzero(second) - 500


# ---- latency, jitter and drift in simulated runs ------------------------------------------


def test_steady_frames_without_jitter_play_at_low_latency() -> None:
    run = simulate(speech_like(60.0))
    stats = run.buffer.stats
    assert stats.underruns == 0 and stats.trimmed_ms == stats.stretched_ms == 0
    assert stats.target_ms == 40.0
    assert max(run.depths_ms[5:]) <= 40.0  # 40 ms queued when the speaker asks: 20 after


def test_target_grows_with_jitter_at_once_and_shrinks_slowly() -> None:
    rng = np.random.default_rng(7)
    frames = 50 * 90
    delays = np.zeros(frames)
    delays[250 : 50 * 20] = rng.uniform(0.0, 0.08, 50 * 20 - 250)  # 5-20 s: up to 80 ms late
    run = simulate(speech_like(90.0), delays_s=delays)
    target = np.array(run.targets_ms)
    at = lambda s: target[int(s * 50)]  # noqa: E731
    assert at(4.9) == 40.0
    assert at(5.5) >= 90.0  # grows within half a second of jitter
    assert at(22.0) >= 0.9 * at(19.9)  # holds for a while once the jitter stops...
    assert at(40.0) < at(22.0)  # ...then shrinks...
    assert at(80.0) <= 45.0  # ...back to the floor
    assert run.buffer.stats.underruns <= 2  # the first late frames, before it learned


@pytest.mark.parametrize("speed", [1.005, 0.995], ids=["sender-fast", "sender-slow"])
def test_drift_control_keeps_the_depth_at_the_target(speed: float) -> None:
    run = simulate(speech_like(180.0), speed=speed)
    stats = run.buffer.stats
    depths = np.array(run.depths_ms[250:])
    assert stats.underruns == 0
    assert depths.min() >= 20.0 and depths.max() <= 70.0
    assert np.median(depths) <= 50.0
    # 0.5 % of 180 s is 900 ms to remove or add; the controller did that, no more.
    corrected = stats.trimmed_ms if speed > 1 else stats.stretched_ms
    assert 0.8 * 900 <= corrected <= 1.2 * 900


@pytest.mark.parametrize("speed", [1.005, 0.995], ids=["sender-fast", "sender-slow"])
def test_drift_steps_do_not_click_even_in_continuous_sound(speed: float) -> None:
    signal = tone(440, 30_000, dbfs=-6)
    run = simulate(signal, speed=speed)
    sine_step = np.max(np.abs(np.diff(signal.astype(np.int32))))
    stats = run.buffer.stats
    assert stats.trimmed_ms + stats.stretched_ms > 0
    steady = run.out[RATE_HZ:].astype(np.int32)  # after the start's fade-in
    assert np.max(np.abs(np.diff(steady))) <= 1.3 * sine_step  # a splice click is ~10x


# ---- the thread-safe wrapper --------------------------------------------------------------


def test_shared_playout_moves_every_sample_across_threads() -> None:
    shared = SharedPlayout(EXACT)
    frames = 400
    outs: list[Pcm] = []

    def speaker() -> None:
        for _ in range(frames + 10):
            pcm, _ = shared.pull_with_pts(N)
            outs.append(pcm)

    thread = threading.Thread(target=speaker)
    thread.start()
    for k in range(frames):
        shared.push(counting(k * N % 30_000, N), k * N, k * 0.02)
    thread.join()
    shared.finish()
    shared.mark()
    out = np.concatenate(outs + [shared.pull(N) for _ in range(frames)])
    shared.flush()
    stats = shared.stats
    gone = stats.played_ms + stats.dropped_ms + stats.flushed_ms
    assert gone == pytest.approx(frames * 20.0)
    assert np.count_nonzero(out) * MS == pytest.approx(stats.played_ms)
