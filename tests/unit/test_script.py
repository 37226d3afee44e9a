"""voicecli.server.script: loading scripts, their error messages, and the scripted responder."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import numpy as np
import pytest

from voicecli.audio import dsp
from voicecli.audio.wav import write_wav
from voicecli.errors import ConfigError
from voicecli.server.responders import (
    DropCall,
    ErrorReply,
    FunctionCall,
    Reply,
    ResponseRequest,
    Speech,
    ToolOutput,
    Trigger,
)
from voicecli.server.script import DEFAULT_FALLBACK, ScriptedResponder, load_script

WEATHER = """
[[step]]
on = "speech"
match = "weather"
transcript = "what's the weather in Paris"
[[step.reply]]
say = "Let me check."
wav = "hello.wav"
[[step.reply]]
call = "get_weather"
arguments = { city = "Paris" }

[[step]]
on = "tool_output"
[[step.reply]]
say = "It is sunny."
tone_hz = 660
ms = 500

[[step]]
on = "text"
match = "CRASH"
[[step.reply]]
error = "server_error"
message = "boom"
type = "server_error"
[[step.reply]]
drop = true
"""


def write_script(tmp_path: Path, body: str, name: str = "script.toml") -> Path:
    path = tmp_path / name
    path.write_text(dedent(body), encoding="utf-8")
    return path


def load_error(tmp_path: Path, body: str, name: str = "script.toml") -> str:
    with pytest.raises(ConfigError) as caught:
        load_script(write_script(tmp_path, body, name))
    assert "\n" not in caught.value.message
    return caught.value.message.removeprefix(str(tmp_path / name) + ": ")


def request(trigger: Trigger, **fields: object) -> ResponseRequest:
    return ResponseRequest(trigger=trigger, **fields)  # type: ignore[arg-type]


def said(reply: Reply) -> list[str]:
    return [p.transcript for p in reply.parts if isinstance(p, Speech)]


@pytest.fixture
def weather(tmp_path: Path) -> ScriptedResponder:
    write_wav(tmp_path / "hello.wav", dsp.tone(300, 400, rate=16000), 16000)
    return ScriptedResponder(load_script(write_script(tmp_path, WEATHER)))


def test_the_example_script_loads_with_its_wav_at_48k(tmp_path: Path) -> None:
    write_wav(tmp_path / "hello.wav", dsp.tone(300, 400, rate=16000), 16000)
    script = load_script(write_script(tmp_path, WEATHER))
    first = script.steps[0]
    assert (first.on, first.match, first.transcript) == (
        "speech",
        "weather",
        "what's the weather in Paris",
    )
    speech, call = first.replies
    assert isinstance(speech, Speech) and speech.audio.shape == (19200,)
    assert dsp.normalized_xcorr_peak(dsp.tone(300, 400), speech.audio)[0] > 0.999
    assert call == FunctionCall("get_weather", '{"city": "Paris"}')
    assert script.steps[2].replies == (
        ErrorReply("server_error", "boom", "server_error"),
        DropCall(),
    )


def test_say_without_wav_is_a_tone_of_the_asked_pitch_and_length(tmp_path: Path) -> None:
    write_wav(tmp_path / "hello.wav", dsp.silence(10), 48000)
    speech = load_script(write_script(tmp_path, WEATHER)).steps[1].replies[0]
    assert isinstance(speech, Speech) and speech.transcript == "It is sunny."
    np.testing.assert_array_equal(speech.audio, dsp.tone(660, 500))


@pytest.mark.parametrize(("text", "ms"), [("Hi", 300), ("x" * 20, 1200)])
def test_default_tone_length_follows_the_text(tmp_path: Path, text: str, ms: int) -> None:
    script = load_script(write_script(tmp_path, f'[[step]]\n[[step.reply]]\nsay = "{text}"\n'))
    speech = script.steps[0].replies[0]
    assert isinstance(speech, Speech)
    assert speech.audio.shape == (dsp.ms_to_samples(ms),)
    assert dsp.rms_dbfs(speech.audio) > -20  # audible


def test_json_scripts_work_and_take_raw_json_arguments(tmp_path: Path) -> None:
    body = {
        "repeat": True,
        "step": [{"on": "text", "reply": [{"call": "f", "arguments": '{"a": [1, 2]}'}]}],
    }
    script = load_script(write_script(tmp_path, json.dumps(body), "s.json"))
    assert script.repeat is True
    assert script.steps[0].replies == (FunctionCall("f", '{"a": [1, 2]}'),)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[[step]]\n[[step.reply]]\nsay = "a"\n[[step]]\n[[step.reply]]\nsya = "b"\n',
            "step 2: reply 1: a reply has exactly one of 'say', 'call', 'error', 'drop'; "
            "found none",
        ),
        (
            '[[step]]\n[[step.reply]]\nsay = "a"\n[[step]]\n[[step.reply]]\nsay = "b"\nsya = 1\n',
            "step 2: reply 1: unknown key 'sya'",
        ),
        ('[[step]]\non = "voice"\n[[step.reply]]\ndrop = true\n', "step 1: 'on' must be one of"),
        ('[[step]]\non = "text"\n', "step 1: needs at least one [[step.reply]]"),
        ('[[step]]\nmtch = "x"\n', "step 1: unknown key 'mtch'"),
        ('[[step]]\n[[step.reply]]\nsay = "a"\ncall = "f"\n', "found 'say' and 'call'"),
        ("[[step]]\n[[step.reply]]\ndrop = false\n", "step 1: reply 1: 'drop' must be true"),
        ("[[step]]\n[[step.reply]]\nsay = 3\n", "reply 1: 'say' must be a string, got an integer"),
        ('[[step]]\n[[step.reply]]\nsay = "a"\nms = true\n', "'ms' must be an integer, got a b"),
        ('[[step]]\n[[step.reply]]\nsay = "a"\nms = -5\n', "'ms' must be positive"),
        ('[[step]]\n[[step.reply]]\ncall = "f"\narguments = "{oops"\n', "not valid JSON"),
        ('[[step]]\n[[step.reply]]\ncall = "f"\narguments = "[1]"\n', "must be a JSON object"),
        (
            '[[step]]\non = "text"\ntranscript = "hi"\n[[step.reply]]\ndrop = true\n',
            "step 1: 'transcript' is only used by steps on speech",
        ),
        ('repeat = "yes"\n', "'repeat' must be a boolean, got a string"),
        ("stpe = []\n", "unknown key 'stpe'"),
        ("[[step]\n", "invalid TOML"),
    ],
)
def test_mistakes_are_one_line_errors_naming_step_and_reply(
    tmp_path: Path, body: str, message: str
) -> None:
    assert message in load_error(tmp_path, body)


def test_a_missing_wav_is_named(tmp_path: Path) -> None:
    message = load_error(tmp_path, '[[step]]\n[[step.reply]]\nsay = "a"\nwav = "gone.wav"\n')
    assert message.startswith("step 1: reply 1: wav 'gone.wav':")
    assert "gone.wav: no such file" in message


def test_wrong_extension_and_missing_script_are_errors(tmp_path: Path) -> None:
    assert "use a .toml or .json file" in load_error(tmp_path, "x", "script.yaml")
    with pytest.raises(ConfigError, match="no such file"):
        load_script(tmp_path / "absent.toml")


def test_invalid_json_is_an_error(tmp_path: Path) -> None:
    assert load_error(tmp_path, "{", "s.json").startswith("invalid JSON")


async def test_steps_are_taken_in_order_by_trigger_and_match(weather: ScriptedResponder) -> None:
    assert weather.name == "scripted"
    crash = await weather.respond(request(Trigger.TEXT, user_text="please crash now"))
    assert [type(p) for p in crash.parts] == [ErrorReply, DropCall]
    assert await weather.transcribe(dsp.silence(500)) == "what's the weather in Paris"
    turn = await weather.respond(
        request(Trigger.SPEECH, user_text="what's the weather in Paris", user_audio=dsp.silence(1))
    )
    assert said(turn) == ["Let me check."]
    assert isinstance(turn.parts[1], FunctionCall)
    outputs = (ToolOutput("c1", "get_weather", '{"sky": "clear"}'),)
    assert said(await weather.respond(request(Trigger.TOOL_OUTPUT, tool_outputs=outputs))) == [
        "It is sunny."
    ]


async def test_a_step_is_used_once_then_the_fallback_answers(weather: ScriptedResponder) -> None:
    crash = request(Trigger.TEXT, user_text="crash")
    await weather.respond(crash)
    again = await weather.respond(crash)
    assert said(again) == [DEFAULT_FALLBACK]
    speech = again.parts[0]
    assert isinstance(speech, Speech) and dsp.rms_dbfs(speech.audio) > -20


async def test_unmatched_text_gets_the_fallback(weather: ScriptedResponder) -> None:
    reply = await weather.respond(request(Trigger.TEXT, user_text="hello"))
    assert said(reply) == [DEFAULT_FALLBACK]


async def test_transcribe_is_none_when_no_speech_step_is_left(tmp_path: Path) -> None:
    responder = ScriptedResponder(
        load_script(write_script(tmp_path, '[[step]]\non = "text"\n[[step.reply]]\nsay = "a"\n'))
    )
    assert await responder.transcribe(dsp.silence(100)) is None


async def test_the_transcribed_step_answers_the_turn(tmp_path: Path) -> None:
    body = """
    [[step]]
    on = "speech"
    match = "second"
    [[step.reply]]
    say = "wrong step"
    [[step]]
    on = "speech"
    transcript = "first then second"
    [[step.reply]]
    say = "right step"
    """
    responder = ScriptedResponder(load_script(write_script(tmp_path, body)))
    transcript = await responder.transcribe(dsp.silence(100))
    assert transcript == "first then second"
    turn = await responder.respond(request(Trigger.SPEECH, user_text=transcript))
    assert said(turn) == ["right step"]


async def test_matching_sees_tool_names_and_response_instructions(tmp_path: Path) -> None:
    body = """
    fallback = "nothing"
    [[step]]
    on = "response.create"
    match = "greet"
    [[step.reply]]
    say = "Hello!"
    [[step]]
    on = "tool_output"
    match = "get_time"
    [[step.reply]]
    say = "It is noon."
    """
    responder = ScriptedResponder(load_script(write_script(tmp_path, body)))
    bare = request(Trigger.RESPONSE_CREATE)
    assert said(await responder.respond(bare)) == ["nothing"]
    greet = request(Trigger.RESPONSE_CREATE, instructions="Greet the user")
    assert said(await responder.respond(greet)) == ["Hello!"]
    other_tool = request(Trigger.TOOL_OUTPUT, tool_outputs=(ToolOutput("c", "get_date", "x"),))
    assert said(await responder.respond(other_tool)) == ["nothing"]
    time_tool = request(Trigger.TOOL_OUTPUT, tool_outputs=(ToolOutput("c", "get_time", "12"),))
    assert said(await responder.respond(time_tool)) == ["It is noon."]


async def test_repeat_starts_over_after_the_last_step(tmp_path: Path) -> None:
    body = """
    repeat = true
    [[step]]
    [[step.reply]]
    say = "one"
    [[step]]
    [[step.reply]]
    say = "two"
    """
    responder = ScriptedResponder(load_script(write_script(tmp_path, body)))
    replies = [said(await responder.respond(request(Trigger.RESPONSE_CREATE))) for _ in range(5)]
    assert replies == [["one"], ["two"], ["one"], ["two"], ["one"]]
