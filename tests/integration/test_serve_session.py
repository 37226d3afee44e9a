"""Whole event sequences of `voicecli serve` over real WebRTC on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from tests.integration.conftest import connected, get_time_script, scripted, serve, user_text
from voicecli.audio.dsp import normalized_xcorr_peak, rms_dbfs, silence, tone
from voicecli.audio.wav import write_wav
from voicecli.server.responders import Pcm
from voicecli.testing.offerer import Offerer

pytestmark = pytest.mark.integration

# One voice turn over WebRTC, GA order (realtime-protocol.md §4.6) with input transcription on.
SPOKEN_TURN = [
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.added",
    "conversation.item.done",
    "response.created",
    "rate_limits.updated",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
    "output_audio_buffer.started",
    *["response.output_audio_transcript.delta"] * 5,  # one a word
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "conversation.item.done",
    "response.done",
    "output_audio_buffer.stopped",
]


def chirp(ms: int, start_hz: float = 200.0, end_hz: float = 2000.0) -> Pcm:
    """A sweep: unlike a tone it has one best alignment, so correlation proves the audio."""
    t = np.arange(48 * ms) / 48_000
    phase = 2 * np.pi * (start_hz * t + (end_hz - start_hz) * t**2 / (2 * t[-1]))
    return (np.sin(phase) * 0.25 * 32767).astype(np.int16)


def speak(client: Offerer, ms: int = 600) -> None:
    client.mic.push(np.concatenate([tone(300, ms), silence(100)]))


async def test_session_update_merges_and_answers_with_the_whole_session() -> None:
    async with serve() as server, connected(server) as client:
        client.send(
            {
                "type": "session.update",
                "event_id": "evt_1",
                "session": {
                    "type": "realtime",
                    "instructions": "Be brief.",
                    "audio": {"output": {"voice": "cedar"}},
                },
            }
        )
        session = (await client.wait_for("session.updated"))["session"]
    assert session["instructions"] == "Be brief."
    assert session["audio"]["output"]["voice"] == "cedar"
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad", "kept"


async def test_bad_events_get_errors_and_the_session_stays_open() -> None:
    async with serve() as server, connected(server) as client:
        client.send(
            {
                "type": "session.update",
                "event_id": "evt_beta",
                "session": {"type": "realtime", "modalities": ["text"]},
            }
        )
        beta = (await client.wait_for("error"))["error"]
        client.channel.send("this is not json")
        count = len(client.events)
        not_json = (await client.wait_for("error", after=count))["error"]
        count = len(client.events)
        client.send({"type": "response.dance"})
        unknown = (await client.wait_for("error", after=count))["error"]
        client.send({"type": "session.update", "session": {"type": "realtime"}})
        await client.wait_for("session.updated")
    assert (beta["code"], beta["param"], beta["event_id"]) == (
        "unknown_parameter",
        "session.modalities",
        "evt_beta",
    )
    assert beta["message"] == "Unknown parameter: 'session.modalities'."
    assert not_json["code"] == "invalid_json"
    assert (unknown["code"], unknown["param"]) == ("invalid_value", "type")


async def test_scripted_spoken_turn(tmp_path: Path) -> None:
    reply_audio = chirp(1200)
    write_wav(tmp_path / "reply.wav", reply_audio, 48_000)
    script = """
    [[step]]
    on = "speech"
    transcript = "hello there"
    [[step.reply]]
    say = "Hi, I am a script."
    wav = "reply.wav"
    """
    session = {
        "type": "realtime",
        "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}},
    }
    async with (
        serve(responder=scripted(tmp_path, script)) as server,
        connected(server, session=session) as client,
    ):
        speak(client)
        await client.wait_for("output_audio_buffer.stopped")
        await asyncio.sleep(0.1)  # the last RTP frames trail the event
    turn = client.types(after=1)
    # Input transcription is asynchronous: it may arrive anywhere after the commit (§4.6 14).
    transcription = [t for t in turn if "input_audio_transcription" in t]
    assert transcription == ["conversation.item.input_audio_transcription.delta"] * 2 + [
        "conversation.item.input_audio_transcription.completed"
    ]
    assert [t for t in turn if "input_audio_transcription" not in t] == SPOKEN_TURN
    events = {e["type"]: e for e in client.events}
    assert events["conversation.item.input_audio_transcription.completed"]["transcript"] == (
        "hello there"
    )
    deltas = [
        e["delta"] for e in client.events if e["type"] == "response.output_audio_transcript.delta"
    ]
    assert "".join(deltas) == "Hi, I am a script."
    done = events["response.done"]["response"]
    assert done["status"] == "completed"
    assert done["usage"]["output_token_details"]["audio_tokens"] == 24  # 1.2 s at 20 tokens/s
    correlation, _ = normalized_xcorr_peak(client.received_audio(), reply_audio)
    assert correlation > 0.9, "the caller hears the scripted WAV"


async def test_text_only_session_answers_in_text() -> None:
    session = {"type": "realtime", "output_modalities": ["text"]}
    async with serve() as server, connected(server, session=session) as client:
        client.send(user_text("ping"))
        client.send({"type": "response.create"})
        done = await client.wait_for("response.done")
    types = client.types()
    assert "response.output_text.done" in types
    assert not [t for t in types if t.startswith(("output_audio_buffer", "response.output_audio"))]
    assert done["response"]["output"][0]["content"] == [{"type": "output_text", "text": "ping"}]


TOOL_SCRIPT = get_time_script(match="12:00", say="It is noon.")

GET_TIME = {
    "type": "function",
    "name": "get_time",
    "description": "The time.",
    "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}},
}


async def test_tool_round_trip(tmp_path: Path) -> None:
    session = {"type": "realtime", "tools": [GET_TIME]}
    async with (
        serve(responder=scripted(tmp_path, TOOL_SCRIPT)) as server,
        connected(server, session=session) as client,
    ):
        client.send(user_text("what time is it?"))
        client.send({"type": "response.create"})
        call = await client.wait_for("response.function_call_arguments.done")
        first = await client.wait_for("response.done")
        client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "function_call_output",
                    "call_id": call["call_id"],
                    "output": json.dumps({"time": "12:00"}),
                },
            }
        )
        mark = len(client.events)
        added = await client.wait_for("conversation.item.done", after=mark)
        client.send({"type": "response.create"})
        answer = await client.wait_for("response.output_audio_transcript.done", after=mark)
    assert (call["name"], json.loads(call["arguments"])) == ("get_time", {"timezone": "UTC"})
    assert first["response"]["output"][0]["type"] == "function_call"
    assert "output_audio_buffer.started" not in client.types(after=0)[: client.events.index(first)]
    assert added["item"]["type"] == "function_call_output"
    assert answer["transcript"] == "It is noon."


async def test_tool_output_must_name_a_known_call_and_be_a_string() -> None:
    async with serve() as server, connected(server) as client:
        client.send(
            {
                "type": "conversation.item.create",
                "event_id": "evt_unknown",
                "item": {"type": "function_call_output", "call_id": "call_nope", "output": "x"},
            }
        )
        unknown = (await client.wait_for("error"))["error"]
        mark = len(client.events)
        client.send(
            {
                "type": "conversation.item.create",
                "event_id": "evt_object",
                "item": {
                    "type": "function_call_output",
                    "call_id": "call_nope",
                    "output": {"time": "12:00"},
                },
            }
        )
        wrong_type = (await client.wait_for("error", after=mark))["error"]
        channel_open = not client.channel_closed.is_set()
    assert (unknown["code"], unknown["param"], unknown["event_id"]) == (
        "invalid_value",
        "item.call_id",
        "evt_unknown",
    )
    assert (wrong_type["code"], wrong_type["param"]) == ("invalid_type", "item.output")
    assert wrong_type["message"] == (
        "Invalid type for 'item.output': expected a string, but got an object instead."
    )
    assert channel_open, "an error event, the session goes on"


async def test_strict_mode_closes_the_channel_on_a_malformed_tool_output() -> None:
    async with (
        serve(faults=_faults(strict_tool_output=True)) as server,
        connected(server) as client,
    ):
        client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "function_call_output",
                    "call_id": "call_1",
                    "output": {"not": "a string"},
                },
            }
        )
        await client.wait_channel_closed(5)
        state = client.pc.connectionState
    assert "error" not in client.types(), "closed without an error event, as users report"
    assert state == "connected", "the peer connection stays up"


async def test_barge_in_stops_the_answer(tmp_path: Path) -> None:
    script = """
    [[step]]
    on = "text"
    [[step.reply]]
    say = "This is a long answer that the user will interrupt."
    tone_hz = 500
    ms = 4000
    """
    async with serve(responder=scripted(tmp_path, script)) as server, connected(server) as client:
        client.send(user_text("talk to me"))
        client.send({"type": "response.create"})
        await client.wait_for("output_audio_buffer.started")
        await asyncio.sleep(0.6)
        speak(client, 400)
        cleared = await client.wait_for("output_audio_buffer.cleared")
        done = await client.wait_for("response.done")
        await asyncio.sleep(0.5)
    types = client.types()
    assert types.index("input_audio_buffer.speech_started") < types.index(
        "output_audio_buffer.cleared"
    )
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"]["reason"] == "turn_detected"
    after = client.received_audio(since=client.arrival(cleared) + 0.1)
    assert after.size > 0 and rms_dbfs(after) < -60, "the server stopped sending the answer"


async def test_push_to_talk_turn() -> None:
    async with serve() as server, connected(server) as client:
        client.send(
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
            }
        )
        await client.wait_for("session.updated")
        client.mic.push(tone(300, 500))
        await asyncio.sleep(0.8)
        client.send({"type": "input_audio_buffer.commit"})
        committed = await client.wait_for("input_audio_buffer.committed")
        client.send({"type": "response.create"})
        await client.wait_for("output_audio_buffer.stopped")
    assert "input_audio_buffer.speech_started" not in client.types()
    assert committed["item_id"].startswith("item_")
    assert rms_dbfs(client.received_audio()) > -40, "the committed audio was echoed"


async def test_response_lifecycle_errors() -> None:
    async with serve() as server, connected(server) as client:
        client.send({"type": "input_audio_buffer.commit", "event_id": "evt_empty"})
        empty = (await client.wait_for("error"))["error"]
        mark = len(client.events)
        client.send({"type": "response.cancel"})
        not_active = (await client.wait_for("error", after=mark))["error"]
        client.send(user_text("one"))
        client.send({"type": "response.create"})
        created = await client.wait_for("response.created")
        mark = len(client.events)
        client.send({"type": "response.create"})
        busy = (await client.wait_for("error", after=mark))["error"]
        client.send({"type": "response.cancel"})
        done = await client.wait_for("response.done")
    assert (empty["code"], empty["event_id"]) == ("input_audio_buffer_commit_empty", "evt_empty")
    assert not_active["code"] == "response_cancel_not_active"
    assert busy["code"] == "conversation_already_has_active_response"
    assert created["response"]["id"] in busy["message"]
    assert done["response"]["status_details"]["reason"] == "client_cancelled"


async def test_output_audio_buffer_clear_cuts_buffered_audio(tmp_path: Path) -> None:
    script = """
    [[step]]
    [[step.reply]]
    say = "A long answer."
    ms = 3000
    """
    async with serve(responder=scripted(tmp_path, script)) as server, connected(server) as client:
        client.send({"type": "response.create"})
        started = await client.wait_for("output_audio_buffer.started")
        await asyncio.sleep(0.3)
        client.send({"type": "response.cancel"})
        client.send({"type": "output_audio_buffer.clear"})
        cleared = await client.wait_for("output_audio_buffer.cleared")
    assert cleared["response_id"] == started["response_id"]


async def test_items_can_be_retrieved_and_deleted() -> None:
    async with serve() as server, connected(server) as client:
        client.send(user_text("remember me"))
        added = await client.wait_for("conversation.item.added")
        item_id = added["item"]["id"]
        client.send({"type": "conversation.item.retrieve", "item_id": item_id})
        retrieved = await client.wait_for("conversation.item.retrieved")
        client.send({"type": "conversation.item.delete", "item_id": item_id})
        deleted = await client.wait_for("conversation.item.deleted")
        client.send({"type": "conversation.item.retrieve", "item_id": item_id})
        gone = (await client.wait_for("error"))["error"]
    assert retrieved["item"]["content"][0]["text"] == "remember me"
    assert deleted["item_id"] == item_id
    assert gone["code"] == "item_retrieve_invalid_item_id"


async def test_several_calls_at_once_each_hear_their_own_echo() -> None:
    async with serve() as server:
        clients = [Offerer(server.base_url) for _ in range(3)]
        await asyncio.gather(*(c.connect() for c in clients))
        for hz, client in zip((300, 450, 700), clients, strict=True):
            client.mic.push(np.concatenate([tone(hz, 600), silence(100)]))
        await asyncio.gather(*(c.wait_for("output_audio_buffer.stopped") for c in clients))
        await asyncio.sleep(0.1)
        heard = [c.received_audio() for c in clients]
        await asyncio.gather(*(c.close() for c in clients))
    for hz, audio in zip((300, 450, 700), heard, strict=True):
        assert _dominant_hz(audio) == pytest.approx(hz, abs=15)
    assert all(c.problems == [] for c in clients)


def _dominant_hz(audio: Pcm) -> float:
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64)))
    return float(np.argmax(spectrum) * 48_000 / audio.size)


def _faults(**switches: object) -> object:
    from voicecli.server.faults import ServeFaults

    return ServeFaults(**switches)  # type: ignore[arg-type]
