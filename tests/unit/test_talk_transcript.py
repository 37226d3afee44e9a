"""--transcript: finished turns on disk at once; a lost connection marked with what had arrived."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicecli.errors import ConfigError
from voicecli.realtime.session_events import AssistantText, UserText
from voicecli.talk.events import Reconnected, Reconnecting
from voicecli.talk.transcript import TranscriptFile


def test_each_finished_turn_is_on_disk_before_the_next_event(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    transcript = TranscriptFile(path)
    transcript.on_event(UserText("item_1", "what time\\n is it", final=True))
    assert path.read_text() == "you: what time\\n is it\n"
    transcript.on_event(AssistantText("resp_1", "item_2", "It is", final=False))
    assert path.read_text().count("\n") == 1  # deltas are not turns
    transcript.on_event(AssistantText("resp_1", "item_2", "It is  ten.\n", final=True))
    assert path.read_text().splitlines()[-1] == "assistant: It is ten."
    transcript.close()


def test_a_drop_keeps_the_part_of_the_answer_that_arrived(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    transcript = TranscriptFile(path)
    transcript.on_event(AssistantText("resp_1", "item_2", "Once upon ", final=False))
    transcript.on_event(AssistantText("resp_1", "item_2", "a time", final=False))
    transcript.on_event(Reconnecting("the data channel closed", attempt=1))
    transcript.on_event(Reconnecting("the data channel closed", attempt=2))  # one mark only
    transcript.on_event(Reconnected(0.42, "webrtc"))
    transcript.close()
    assert path.read_text().splitlines() == [
        "assistant (cut off): Once upon a time",
        "--: connection lost: the data channel closed",
        "--: reconnected after 0.4 s (webrtc)",
    ]


def test_an_existing_transcript_is_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_text("you: earlier\n")
    transcript = TranscriptFile(path)
    transcript.on_event(UserText("item_1", "later", final=True))
    transcript.close()
    assert path.read_text() == "you: earlier\nyou: later\n"


def test_an_unwritable_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot write the transcript") as raised:
        TranscriptFile(tmp_path / "missing-dir" / "chat.txt")
    assert raised.value.exit_code == 2
    assert "--transcript" in (raised.value.hint or "")
