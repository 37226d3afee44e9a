"""A spoken two-turn conversation with the offline assistant through the real `voicecli talk`.

espeak-ng speaks into the virtual mic; PocketSphinx (in serve) transcribes; the assistant calls
talk's `get_time` tool, then works out a sum, and speaks both answers to the virtual speaker.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from voicecli.server.app import running_server
from voicecli.server.http import ServerConfig
from voicecli.testing.pulse import PulseAudio

from .talk_kit import Talk, kind, play, speaker_recording

pytestmark = [pytest.mark.device, pytest.mark.usefixtures("local_extra")]


async def test_two_spoken_turns_with_a_tool_call(pulse: PulseAudio, tmp_path: Path) -> None:
    from voicecli.server.assistant.evaluation import speak_to_wav
    from voicecli.server.assistant.responder import assistant_factory

    time_wav = speak_to_wav("what time is it", tmp_path / "time.wav")
    sum_wav = speak_to_wav("what is two plus three", tmp_path / "sum.wav")
    config = ServerConfig(responder=assistant_factory())
    async with running_server(config) as server, speaker_recording() as recording:
        talk = Talk(pulse, server.base_url, tmp_path)
        try:
            await talk.connected()
            await play(pulse, time_wav)
            first = await talk.wait_for(lambda e: kind(e, "AssistantText", final=True), 20)
            await talk.wait_for(lambda e: kind(e, "AudioState", state="stopped"), 20)
            await play(pulse, sum_wav)
            second = await talk.wait_for(
                lambda e: kind(e, "AssistantText", final=True) and e["t"] > first["t"], 20
            )
            await talk.wait_for(
                lambda e: kind(e, "AudioState", state="stopped") and e["t"] > second["t"], 20
            )
            talk.press(b"q")
            code, out, err = await talk.finish()
        finally:
            talk.kill()
    assert code == 0, err
    hour = datetime.now().astimezone().strftime("%H")
    assert f"It is {hour}:" in first["text"] or f"It is {int(hour)}:" in first["text"]
    tools = [e for e in talk.events() if e["event"] == "ToolCallFinished"]
    assert tools and tools[0]["result"]["name"] == "get_time"
    assert "five" in second["text"].lower() or "5" in second["text"]
    assert out.count("you:") == 2 and out.count("assistant:") == 2
    loud = [t for t, is_loud in recording.loud_windows(-45.0) if is_loud]
    assert any(t > second["t"] for t in loud), "the second answer was not heard"
