"""voicecli.server.echo: the echo responder plays back and reads back what it gets."""

from __future__ import annotations

import numpy as np
import pytest

from voicecli.audio import dsp
from voicecli.server.echo import READY_TEXT, EchoResponder
from voicecli.server.responders import Reply, ResponseRequest, Speech, ToolOutput, Trigger


def only_speech(reply: Reply) -> Speech:
    assert len(reply.parts) == 1
    part = reply.parts[0]
    assert isinstance(part, Speech)
    return part


async def test_transcribe_describes_the_turn_length() -> None:
    echo = EchoResponder()
    assert echo.name == "echo"
    assert await echo.transcribe(dsp.silence(1234)) == "[speech 1.2 s]"


async def test_speech_is_played_back_exactly() -> None:
    turn = dsp.tone(523, 1500)
    speech = only_speech(
        await EchoResponder().respond(ResponseRequest(Trigger.SPEECH, user_audio=turn))
    )
    np.testing.assert_array_equal(speech.audio, turn)
    assert speech.transcript == "[echo 1.5 s]"


async def test_speech_playback_uses_the_user_transcript_when_there_is_one() -> None:
    request = ResponseRequest(Trigger.SPEECH, user_text="hello there", user_audio=dsp.silence(10))
    assert only_speech(await EchoResponder().respond(request)).transcript == "hello there"


@pytest.mark.parametrize(("text", "ms"), [("hi", 300), ("a longer sentence here", 1320)])
async def test_text_is_said_back_with_a_tone_as_long_as_the_text(text: str, ms: int) -> None:
    speech = only_speech(
        await EchoResponder().respond(ResponseRequest(Trigger.TEXT, user_text=text))
    )
    assert speech.transcript == text
    assert speech.audio.shape == (dsp.ms_to_samples(ms),)
    assert dsp.rms_dbfs(speech.audio) > -20


async def test_tool_outputs_are_read_back() -> None:
    outputs = (ToolOutput("c1", "get_time", "12:00"), ToolOutput("c2", "get_date", "May 1"))
    request = ResponseRequest(Trigger.TOOL_OUTPUT, tool_outputs=outputs)
    speech = only_speech(await EchoResponder().respond(request))
    assert speech.transcript == "get_time returned: 12:00 get_date returned: May 1"


async def test_a_bare_response_create_says_it_is_ready() -> None:
    speech = only_speech(await EchoResponder().respond(ResponseRequest(Trigger.RESPONSE_CREATE)))
    assert speech.transcript == READY_TEXT
    assert speech.audio.shape == (dsp.ms_to_samples(60 * len(READY_TEXT)),)
