"""The server's output audio buffer: what "the model" has generated and not yet sent as RTP.

A pure object: the paced track pulls 20 ms at a time; the session enqueues generated audio and
learns when a response's audio has fully drained (→ ``output_audio_buffer.stopped``) and how much
of an item was played (→ truncation on barge-in, as the real service does over WebRTC).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from voicecli.server.responders import RATE_HZ, Pcm

FRAME_SAMPLES = RATE_HZ // 50  # 20 ms


@dataclass
class _Chunk:
    response_id: str
    item_id: str
    pcm: Pcm
    offset: int = 0


class OutputBuffer:
    """Generated audio waiting to be played out, tagged by response and item."""

    def __init__(self) -> None:
        self._chunks: deque[_Chunk] = deque()
        self._played: dict[str, int] = {}  # item id → samples played
        self._finished: set[str] = set()  # responses whose audio is fully generated
        self._drained: list[str] = []  # responses that finished playing since the last take
        self._cut: set[str] = set()  # cleared responses: never reported drained afterwards

    def enqueue(self, response_id: str, item_id: str, pcm: Pcm) -> None:
        if pcm.size and response_id not in self._cut:
            self._chunks.append(_Chunk(response_id, item_id, pcm))

    def finish(self, response_id: str) -> None:
        """No more audio will come for this response: report it drained once it has played."""
        if response_id in self._cut:
            return
        self._finished.add(response_id)
        self._note_drained(response_id)

    def pull(self, n: int = FRAME_SAMPLES) -> Pcm:
        """The next ``n`` samples, silence where nothing is queued (RTP never stops)."""
        out = np.zeros(n, dtype=np.int16)
        filled = 0
        while filled < n and self._chunks:
            filled += self._take(out[filled:])
        return out

    def _take(self, into: Pcm) -> int:
        chunk = self._chunks[0]
        count = min(into.size, chunk.pcm.size - chunk.offset)
        into[:count] = chunk.pcm[chunk.offset : chunk.offset + count]
        chunk.offset += count
        self._played[chunk.item_id] = self._played.get(chunk.item_id, 0) + count
        if chunk.offset >= chunk.pcm.size:
            self._chunks.popleft()
            self._note_drained(chunk.response_id)
        return count

    def _note_drained(self, response_id: str) -> None:
        pending = any(c.response_id == response_id for c in self._chunks)
        if response_id in self._finished and not pending:
            self._finished.discard(response_id)
            self._drained.append(response_id)

    def take_drained(self) -> list[str]:
        """Responses whose audio finished playing since the last call."""
        drained, self._drained = self._drained, []
        return drained

    def clear(self) -> str | None:
        """Drop everything queued; return the response whose audio was cut, if any."""
        cut = self._chunks[0].response_id if self._chunks else None
        for chunk in self._chunks:
            self._finished.discard(chunk.response_id)
            self._cut.add(chunk.response_id)
        self._chunks.clear()
        return cut

    def playing(self) -> str | None:
        """The response whose audio is queued now."""
        return self._chunks[0].response_id if self._chunks else None

    def record_sent(self, item_id: str, samples: int) -> None:
        """WebSocket: audio leaves as events, not through this buffer. What was sent counts as
        played, the bound for the client's truncate (it may not exceed what it received)."""
        self._played[item_id] = self._played.get(item_id, 0) + samples

    def played_ms(self, item_id: str) -> int:
        return self._played.get(item_id, 0) * 1000 // RATE_HZ
