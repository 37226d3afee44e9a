"""Benchmark the PlayoutBuffer's hot paths: what the audio callback and the receive pump pay.

The PortAudio output callback calls ``pull(960)`` 50 times a second and the receive pump calls
``push`` once per 20 ms frame; both must stay far below a block (budget: < 50 µs typical).
Baseline, measured in the same run: a plain numpy slice copy of 960 int16 samples (the least
any pull must do). Each row is the median µs per call within a repeat; the table shows the
median over repeats, the slowest repeat's median, the p99 over all calls, and the ratio of the
median to the baseline's median.

    .venv/bin/python bench/playout.py [--repeats 7] [--calls 2000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable, Iterator

import numpy as np

from voicecli.audio.formats import FRAME_SAMPLES as N
from voicecli.audio.formats import RATE_HZ, Pcm
from voicecli.audio.playout import PlayoutBuffer, SharedPlayout

Case = Callable[[int], Iterator[None]]  # a generator: set-up, then one yield per timed call


def speech_like(seconds: float) -> Pcm:
    rng = np.random.default_rng(1)
    n = int(seconds * RATE_HZ)
    envelope = (np.sin(np.arange(n) * 2 * np.pi * 3 / RATE_HZ) > 0).astype(np.float64)
    return np.clip(rng.normal(0, 6000, n) * envelope, -32768, 32767).astype(np.int16)


SIGNAL = speech_like(30.0)


def frame(k: int) -> Pcm:
    start = (k * N) % (SIGNAL.shape[0] - N)
    return SIGNAL[start : start + N]


def playing(buffer: PlayoutBuffer | SharedPlayout, frames: int = 3) -> int:
    for k in range(frames):
        buffer.push(frame(k), k * N, k * 0.02)
    buffer.pull(N)
    return frames


def pull_steady(calls: int) -> Iterator[None]:
    """Steady state: one frame in, one block out; the pull is what is timed."""
    buffer = PlayoutBuffer()
    k = playing(buffer)
    for _ in range(calls):
        buffer.push(frame(k), k * N, k * 0.02)
        k += 1
        yield from timed(lambda: buffer.pull(N))


def push_steady(calls: int) -> Iterator[None]:
    buffer = PlayoutBuffer()
    k = playing(buffer)
    for _ in range(calls):
        pcm, pts, now = frame(k), k * N, k * 0.02
        yield from timed(lambda: buffer.push(pcm, pts, now))  # noqa: B023 (called at once)
        buffer.pull(N)
        k += 1


def pull_shared(calls: int) -> Iterator[None]:
    """The same through SharedPlayout: the lock's cost (uncontended)."""
    shared = SharedPlayout()
    k = playing(shared)
    for _ in range(calls):
        shared.push(frame(k), k * N, k * 0.02)
        k += 1
        yield from timed(lambda: shared.pull(N))


def pull_drift_step(calls: int) -> Iterator[None]:
    """Pulls that trim (a sender 4 % fast: an extra frame every 25; noise with pauses, so
    most trims find a quiet spot): the quiet-spot search and the crossfade."""
    buffer = PlayoutBuffer()
    k = playing(buffer)
    done = 0
    for pulls in range(calls * 1000):  # bounded, in case drift control never acts
        if done == calls:
            break
        for _ in range(2 if pulls % 25 == 0 else 1):
            buffer.push(frame(k), k * N, k * 0.0192)
            k += 1
        before = buffer.stats.trimmed_ms
        started = time.perf_counter_ns()
        buffer.pull(N)
        elapsed = time.perf_counter_ns() - started
        if buffer.stats.trimmed_ms != before:
            done += 1
            _record(elapsed)
            yield


def pull_after_flush(calls: int) -> Iterator[None]:
    """The block right after a barge-in flush: the 11 ms fade-out."""
    buffer = PlayoutBuffer()
    for call in range(calls):
        for k in range(call * 5, call * 5 + 5):
            buffer.push(frame(k), k * N, k * 0.02)
        buffer.pull(N)  # playing
        buffer.flush()
        yield from timed(lambda: buffer.pull(N))


def push_burst(calls: int) -> Iterator[None]:
    """An unpaced (WebSocket) push of 1 s at once, into a buffer that keeps playing."""
    buffer = PlayoutBuffer()
    second = SIGNAL[:RATE_HZ]
    for _ in range(calls):
        yield from timed(lambda: buffer.push(second, None, 0.0))
        for _ in range(50):
            buffer.pull(N)


_samples: list[int] = []


def _record(elapsed_ns: int) -> None:
    _samples.append(elapsed_ns)


def timed(call: Callable[[], object]) -> Iterator[None]:
    started = time.perf_counter_ns()
    call()
    _record(time.perf_counter_ns() - started)
    yield


def timed_copy(calls: int) -> Iterator[None]:
    for k in range(calls):
        start = (k * N) % (SIGNAL.shape[0] - N)
        yield from timed(lambda s=start: SIGNAL[s : s + N].copy())


CASES: list[tuple[str, Case, int]] = [  # name, case, calls divisor (slow set-ups run fewer)
    ("baseline: numpy copy of 960 samples", timed_copy, 1),
    ("pull(960), steady", pull_steady, 1),
    ("push(960 samples, pts), steady", push_steady, 1),
    ("SharedPlayout.pull(960), uncontended", pull_shared, 1),
    ("pull(960) with a drift trim", pull_drift_step, 10),
    ("pull(960) after flush (fade)", pull_after_flush, 4),
    ("push(1 s, pts=None) burst", push_burst, 20),
]


def run_case(case: Case, calls: int) -> list[int]:
    _samples.clear()
    gc.disable()
    try:
        for _ in case(calls):
            pass
    finally:
        gc.enable()
    return list(_samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    rows: list[tuple[str, float, float, float]] = []
    for name, case, divisor in CASES:
        medians, everything = [], []
        run_case(case, 50)  # warm-up: imports, first allocations
        for _ in range(args.repeats):
            samples = run_case(case, max(10, args.calls // divisor))
            medians.append(statistics.median(samples) / 1000)
            everything += samples
        p99 = float(np.percentile(everything, 99)) / 1000
        rows.append((name, statistics.median(medians), max(medians), p99))
    base = rows[0][1]
    print(f"{'case':<40} {'median µs':>10} {'worst rep':>10} {'p99 µs':>8} {'× copy':>7}")
    for name, median, worst, p99 in rows:
        print(f"{name:<40} {median:>10.2f} {worst:>10.2f} {p99:>8.2f} {median / base:>7.1f}")
    print(f"\n{args.repeats} repeats of up to {args.calls} calls each; budget < 50 µs per call.")


if __name__ == "__main__":
    main()
