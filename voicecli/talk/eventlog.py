"""`--event-log FILE`: every event the UI sees, one JSON line each, with its monotonic time.

For bug reports and for measuring (the barge-in test lines up `speech_started` with the
speaker's recording through CLOCK_MONOTONIC, which all processes share). Lines are redacted:
a key pasted into a transcript or an error message must not land in the file.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TextIO

from voicecli.errors import ConfigError
from voicecli.redact import redact
from voicecli.talk.events import TalkEvent


class EventLog:
    def __init__(self, path: Path) -> None:
        try:
            self._file: TextIO = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot write the event log to {path}: {exc.strerror}",
                hint="choose a writable path for --event-log",
            ) from None

    def write(self, event: TalkEvent, now: float) -> None:
        record: dict[str, Any] = {"t": round(now, 6), "event": type(event).__name__}
        if dataclasses.is_dataclass(event):
            record.update(dataclasses.asdict(event))
        self._file.write(redact(json.dumps(record, default=str)) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
