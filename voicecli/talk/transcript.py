"""`--transcript FILE`: every completed turn is appended, flushed and synced as it completes.

A killed or crashed client leaves every finished line on disk (a line per turn, `you: …` /
`assistant: …`), so a conversation is never simply gone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

from voicecli.errors import ConfigError
from voicecli.realtime.session_events import AssistantText, SessionEvent, UserText


class TranscriptFile:
    def __init__(self, path: Path) -> None:
        try:
            self._file: TextIO = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot write the transcript to {path}: {exc.strerror}",
                hint="choose a writable path for --transcript",
            ) from None

    def on_event(self, event: SessionEvent) -> None:
        if isinstance(event, UserText) and event.final:
            self._write("you", event.text)
        elif isinstance(event, AssistantText) and event.final:
            self._write("assistant", event.text)

    def _write(self, who: str, text: str) -> None:
        self._file.write(f"{who}: {' '.join(text.split())}\n")
        self._file.flush()
        os.fsync(self._file.fileno())  # survives a kill -9 or a power cut, not just a crash

    def close(self) -> None:
        self._file.close()
