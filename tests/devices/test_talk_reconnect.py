"""`voicecli talk` keeps the conversation: a real talk process on PulseAudio, its call dropped.

The call is dropped from the in-process `voicecli serve` itself (its fault switch, `drop()`),
at a moment the test chooses; the talk process must reconnect with its devices open, replay
the conversation to the new call, and go on. Also: the WebSocket transport end to end through
the devices (speech, barge-in with truncation), and a killed talk leaving its transcript.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from voicecli.server.app import RunningServer
from voicecli.server.peer import Call
from voicecli.server.ws import SocketCall
from voicecli.testing.pulse import PulseAudio

from .talk_kit import Talk, kind, long_answer, play, server, talking

pytestmark = pytest.mark.device

RECONNECT_MAX_S = 3.0


def the_call(running: RunningServer) -> Call | SocketCall:
    (call,) = running.endpoints.calls.values()
    return call


def created_items(call: Call | SocketCall) -> list[dict[str, Any]]:
    return [e["item"] for e in call.session.received if e["type"] == "conversation.item.create"]


async def a_turn(talk: Talk, pulse: PulseAudio, speech: Path, after_t: float) -> None:
    """Speak, and wait until the echo has been played back (after ``after_t``)."""
    await play(pulse, speech)
    await talk.wait_for(lambda e: kind(e, "AudioState", state="stopped") and e["t"] > after_t)
    await talk.wait_for(lambda e: kind(e, "AssistantText", final=True) and e["t"] > after_t)


async def test_a_dropped_call_reconnects_replays_the_conversation_and_goes_on(
    pulse: PulseAudio, speech: Path, tmp_path: Path
) -> None:
    async with server() as running, talking(pulse, running.base_url, tmp_path) as talk:
        await a_turn(talk, pulse, speech, after_t=0.0)
        first = the_call(running)
        first.drop()
        back = await talk.wait_for(lambda e: e["event"] == "Reconnected")
        second = the_call(running)
        await a_turn(talk, pulse, speech, after_t=back["t"])
        replayed = created_items(second)
        talk.process.send_signal(signal.SIGINT)
        code, out, err = await talk.finish()
    assert code == 0, err
    assert second is not first
    lost = next(e for e in talk.events() if e["event"] == "Reconnecting")
    assert lost["attempt"] == 1
    print(f"reconnected in {back['gap_s'] * 1000:.0f} ms ({lost['cause']})")
    assert back["gap_s"] <= RECONNECT_MAX_S
    roles = [(i["role"], i["content"][0]["text"]) for i in replayed if i["type"] == "message"]
    assert [r for r, _ in roles] == ["user", "assistant"]
    assert all(text.startswith("[speech") for _, text in roles)  # the echo's transcripts
    lines = talk.transcript_path.read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "you",
        "assistant",
        "--",  # connection lost: the cause
        "--",  # reconnected after …
        "you",
        "assistant",
    ]
    assert lines[3].startswith("--: reconnected after")
    stats = json.loads(talk.stats_path.read_text())
    assert len(stats["link"]["reconnect_gaps_s"]) == 1
    assert "reconnected over webrtc" in out  # the plain transcript marks the gap


async def test_a_killed_talk_leaves_every_finished_turn_in_its_transcript(
    pulse: PulseAudio, speech: Path, tmp_path: Path
) -> None:
    async with server() as running, talking(pulse, running.base_url, tmp_path) as talk:
        await a_turn(talk, pulse, speech, after_t=0.0)
        talk.process.send_signal(signal.SIGKILL)
        code, _, _ = await talk.finish()
    assert code == -signal.SIGKILL
    text = talk.transcript_path.read_text()
    assert text.endswith("\n")
    assert [line.split(": ")[0] for line in text.splitlines()] == ["you", "assistant"]
    assert all(line.split(": ", 1)[1].startswith("[speech") for line in text.splitlines())


async def test_talk_over_the_websocket_plays_the_reply_and_truncates_on_barge_in(
    pulse: PulseAudio, speech: Path, tmp_path: Path
) -> None:
    responder = long_answer(tmp_path)
    async with (
        server(responder) as running,
        talking(pulse, running.base_url, tmp_path, "--transport", "websocket") as talk,
    ):
        info = next(e for e in talk.events() if e["event"] == "CallInfo")
        await play(pulse, speech)
        started = await talk.wait_for(lambda e: kind(e, "AudioState", state="started"))
        await asyncio.sleep(max(0.0, started["t"] + 1.5 - time.monotonic()))  # it is playing
        await play(pulse, speech)  # talk over the long answer
        await talk.wait_for(lambda e: kind(e, "AudioState", state="cleared"))
        call = the_call(running)
        truncates = [e for e in call.session.received if e["type"] == "conversation.item.truncate"]
        talk.press(b"q")
        code, _, err = await talk.finish()
    assert code == 0, err
    assert info["transport"] == "websocket"
    assert started["t"] > info["t"]
    (truncate,) = truncates
    assert truncate["audio_end_ms"] > 0  # part of the answer was heard
    errors = [e for e in talk.events() if e["event"] == "ServiceErrorEvent"]
    assert errors == []  # the truncation was within what was received
