"""Where the time goes on our side of the call, measured on the real audio path.

Two spans make up the client-added mouth-to-ear latency (issue 4's benchmark):
- capture → RTP sent: the PortAudio ADC time of a mic block to the moment its RTP packet left
  (aiortc's sender is one recv → encode → send loop, so the packet leaving is the block the
  mic track handed on last);
- RTP received → played: a remote frame's arrival (decoded) to the PortAudio DAC time of the
  speaker block that starts inside it.
The speaker side is recorded in the PortAudio thread as (pts, DAC time) pairs only; matching
them to arrivals happens on the loop. Also the first audible audio of each response, received
and played, for the dashboard's per-turn latency.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from voicecli.audio.dsp import rms_dbfs
from voicecli.audio.formats import RATE_HZ, Pcm
from voicecli.ui.state import percentile

AUDIBLE_DBFS = -50.0
KEEP = 6000  # samples of each span: two minutes of mic frames, one of 10 ms speaker blocks
FIRST_WITHIN = 960  # samples: a first sample this far past a block's start plays in it or next


@dataclass(frozen=True)
class Span:
    p50_ms: float | None
    p95_ms: float | None
    count: int


def span(values: deque[float]) -> Span:
    # Nearest rank, like the dashboard's turn latencies: both end up in the same summary.
    data = sorted(values)
    return Span(percentile(data, 50), percentile(data, 95), len(data))


class SendProbe:
    """capture → RTP sent, per mic frame."""

    def __init__(self, last_capture: Callable[[], float | None]) -> None:
        self._last_capture = last_capture
        self.samples_ms: deque[float] = deque(maxlen=KEEP)

    def on_rtp_sent(self) -> None:
        captured = self._last_capture()
        if captured is not None:
            self.samples_ms.append((time.monotonic() - captured) * 1000)


@dataclass
class _Frame:
    start: int
    end: int
    arrived_s: float


class PlayProbe:
    """RTP received → played, and the first audible sample of each response."""

    def __init__(self) -> None:
        self._frames: deque[_Frame] = deque(maxlen=500)  # ten seconds of frames in flight
        self._played: deque[tuple[int, float]] = deque(maxlen=500)  # filled by PortAudio
        self.samples_ms: deque[float] = deque(maxlen=KEEP)
        self._want_first = False
        self._first_pts: int | None = None

    # Loop thread.

    def expect_response(self) -> None:
        """A response started: the next audible frame is its first audio."""
        self._want_first, self._first_pts = True, None

    def received(self, pcm: Pcm, pts: int | None, now: float) -> float | None:
        """Note a remote frame; returns its arrival time if it is a response's first audio."""
        if pts is not None:
            self._frames.append(_Frame(pts, pts + pcm.size, now))
        if self._want_first and rms_dbfs(pcm) > AUDIBLE_DBFS:
            self._want_first, self._first_pts = False, pts
            return now
        return None

    def match(self) -> float | None:
        """Pair played blocks with arrivals; returns the DAC time of a response's first audio."""
        first_played: float | None = None
        while self._played:
            pts, dac_s = self._played.popleft()
            frame = self._frame_of(pts)
            if frame is None:
                continue
            self.samples_ms.append((dac_s - frame.arrived_s) * 1000)
            if self._first_pts is not None and self._first_pts < pts + FIRST_WITHIN:
                first_played = dac_s + max(0, self._first_pts - pts) / RATE_HZ
                self._first_pts = None
        return first_played

    def _frame_of(self, pts: int) -> _Frame | None:
        while self._frames and self._frames[0].end <= pts:
            self._frames.popleft()
        if self._frames and self._frames[0].start <= pts:
            return self._frames[0]
        return None

    # PortAudio thread: one append per block (deque appends are atomic).

    def played(self, pts: int | None, dac_s: float) -> None:
        if pts is not None:
            self._played.append((pts, dac_s))
