"""`--transcript FILE`: every completed turn is appended, flushed and synced as it completes.

A killed or crashed client leaves every finished line on disk (a line per turn, `you: …` /
`assistant: …`), so a conversation is never simply gone. A lost connection is marked where it
happened, with the part of an answer that had arrived (`assistant (cut off): …`), and so is
the reconnect.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

from voicecli.errors import ConfigError
from voicecli.realtime.session_events import AssistantText, UserText
from voicecli.talk.events import Reconnected, Reconnecting, TalkEvent


class TranscriptFile:
    def __init__(self, path: Path) -> None:
        try:
            self._file: TextIO = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot write the transcript to {path}: {exc.strerror}",
                hint="choose a writable path for --transcript",
            ) from None

        self._partial: dict[str, str] = {}  # response id → the answer's text so far

    def on_event(self, event: TalkEvent) -> None:
        if isinstance(event, UserText) and event.final:
            self._write("you", event.text)
        elif isinstance(event, AssistantText):
            self._assistant(event)
        elif isinstance(event, Reconnecting) and event.attempt <= 1:
            for text in self._partial.values():
                self._write("assistant (cut off)", text)
            self._partial.clear()
            self._write("--", f"connection lost: {event.cause}")
        elif isinstance(event, Reconnected):
            self._write("--", f"reconnected after {event.gap_s:.1f} s ({event.transport})")

    def _assistant(self, event: AssistantText) -> None:
        if event.final:
            self._partial.pop(event.response_id, None)
            self._write("assistant", event.text)
        else:
            so_far = self._partial.get(event.response_id, "")
            self._partial[event.response_id] = so_far + event.text

    def _write(self, who: str, text: str) -> None:
        self._file.write(f"{who}: {' '.join(text.split())}\n")
        self._file.flush()
        os.fsync(self._file.fileno())  # survives a kill -9 or a power cut, not just a crash

    def close(self) -> None:
        self._file.close()
