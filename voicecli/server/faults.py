"""Fault switches for `voicecli serve`, so tests can exercise every failure a client must handle.

Each is a documented `serve` flag (README, `voicecli serve --help`):

- --strict-tool-output: close the data channel after a malformed function_call_output, as
  users report the real service does over WebRTC (realtime-protocol.md §5.2)
- --drop-after S: drop each call's peer connection S seconds after it is answered
- --drop-on TYPE: drop the call when the client sends an event of this type
- --drop-silently: a drop stops all RTP and events instead of closing the peer connection
  (a vanished peer, which only a client's liveness check notices)
- --max-session S: send `session_expired` after S seconds, then close (the 60-minute cap)
- --fail-calls STATUS: answer POST /calls with 401, 429 or 500 (the real error bodies)
- --fail-calls-count N: only the first N calls fail (0: all), to test retries
- --answer-delay-ms MS: delay every SDP answer
- --rtp-loss PERCENT: drop this share of outgoing RTP packets
- --unreachable-ice: answer with only an unreachable ICE candidate (TEST-NET-1), so WebRTC never
  connects, as when UDP is blocked; the WebSocket endpoint still works (the fallback's test)
"""

from __future__ import annotations

from dataclasses import dataclass

from voicecli.server.peer import CallFaults

FAILABLE_STATUSES = (401, 429, 500)


@dataclass
class ServeFaults:
    strict_tool_output: bool = False
    drop_after_s: float | None = None
    drop_on: str | None = None
    drop_silently: bool = False
    max_session_s: float | None = None
    fail_calls: int | None = None
    fail_calls_count: int = 0
    fail_calls_code: str | None = None  # the error code in the forced body (in-process tests)
    answer_delay_ms: int = 0
    rtp_loss_percent: float = 0.0
    seed: int | None = None
    unreachable_ice: bool = False

    def for_call(self) -> CallFaults:
        return CallFaults(
            drop_after_s=self.drop_after_s,
            drop_silently=self.drop_silently,
            max_session_s=self.max_session_s,
            rtp_loss=self.rtp_loss_percent / 100.0,
            seed=self.seed,
            unreachable_ice=self.unreachable_ice,
        )


class CallFailures:
    """Counts forced /calls failures so that only the first N fail."""

    def __init__(self, faults: ServeFaults) -> None:
        self._faults = faults
        self._failed = 0

    def next_status(self) -> int | None:
        status = self._faults.fail_calls
        limit = self._faults.fail_calls_count
        if status is None or (limit and self._failed >= limit):
            return None
        self._failed += 1
        return status
