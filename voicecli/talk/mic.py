"""The microphone across connections: one capture stream, a fresh MicTrack per connection.

aiortc's sender stops its track when a connection that carried audio closes (its RTP loop ends
with ``track.stop()``), so a reconnect needs a new track. The capture keeps running through a
drop: its blocks go to the track in use, and while none is (the gap) they are dropped, not
queued, so the new connection starts with the user's speech of now, not of seconds ago.
Mute and the half-duplex gate belong to the call, not to a track: they carry over.
"""

from __future__ import annotations

from voicecli.audio.formats import Pcm
from voicecli.rtc.tracks import MicTrack


class MicRouter:
    def __init__(self) -> None:
        self._track: MicTrack | None = None
        self._muted = False
        self._gated = False
        self._dropped_before = 0  # blocks dropped by earlier tracks (loop fell behind)
        self.gap_blocks = 0  # blocks dropped because no connection was there to take them

    def new_track(self) -> MicTrack:
        """A track for a connection attempt; it gets audio once :meth:`use` picks it."""
        return MicTrack()

    def use(self, track: MicTrack | None) -> None:
        """Send the capture to ``track`` from now on (None: the gap, blocks are dropped)."""
        if self._track is not None and self._track is not track:
            self._dropped_before += self._track.dropped
        self._track = track
        if track is not None:
            track.muted, track.gated = self._muted, self._gated

    def push(self, pcm: Pcm, captured_s: float) -> None:
        """One 20 ms block from the capture callback (loop thread)."""
        if self._track is None:
            self.gap_blocks += 1
            return
        self._track.push(pcm, captured_s)

    @property
    def current_capture_s(self) -> float | None:
        """ADC time of the block the track in use handed to its sender last."""
        return None if self._track is None else self._track.last_capture_s

    @property
    def dropped(self) -> int:
        return self._dropped_before + (self._track.dropped if self._track is not None else 0)

    @property
    def muted(self) -> bool:
        return self._muted

    @muted.setter
    def muted(self, value: bool) -> None:
        self._muted = value
        if self._track is not None:
            self._track.muted = value

    @property
    def gated(self) -> bool:
        return self._gated

    @gated.setter
    def gated(self, value: bool) -> None:
        self._gated = value
        if self._track is not None:
            self._track.gated = value
