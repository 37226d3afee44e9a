"""The talk controller: keys and session events → mic flags, playout flushes, session commands."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from voicecli.realtime.session_events import AudioState, ResponseStarted, SpeechMark
from voicecli.talk.controller import COMMIT_TAIL_S, GATE_HANGOVER_S, Mode, TalkController
from voicecli.talk.events import Controls, Ended, Notice, TalkEvent
from voicecli.talk.keys import Key


@dataclass
class FakeMic:
    muted: bool = False
    gated: bool = False


@dataclass
class FakePlayout:
    flushes: int = 0

    def flush(self) -> None:
        self.flushes += 1


@dataclass
class FakeConversation:
    responding: bool = False
    sent: list[str] = field(default_factory=list)

    def interrupt(self) -> None:
        self.sent.append("interrupt")

    def clear_input(self) -> None:
        self.sent.append("clear")

    def commit_audio(self) -> None:
        self.sent.append("commit")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    controller: TalkController
    mic: FakeMic
    playout: FakePlayout
    conversation: FakeConversation
    events: list[TalkEvent]
    clock: Clock


def rig(vad: str = "server", duplex: str = "full") -> Rig:
    mic, playout, conversation, events, clock = (
        FakeMic(),
        FakePlayout(),
        FakeConversation(),
        [],
        Clock(),
    )
    controller = TalkController(
        conversation, mic, playout, Mode(vad, duplex), events.append, clock=clock
    )
    return Rig(controller, mic, playout, conversation, events, clock)


def last_controls(events: list[TalkEvent]) -> Controls:
    return [e for e in events if isinstance(e, Controls)][-1]


def test_m_toggles_mute_and_the_screen_is_told() -> None:
    r = rig()
    r.controller.on_key(Key.MUTE)
    assert r.mic.muted and last_controls(r.events).muted
    r.controller.on_key(Key.MUTE)
    assert not r.mic.muted and not last_controls(r.events).muted


def test_q_ends_the_call() -> None:
    r = rig()
    r.controller.on_key(Key.QUIT)
    assert r.events == [Ended("user")]


def test_speech_started_flushes_playout_at_once() -> None:
    r = rig()
    r.controller.on_event(AudioState("resp_1", "started"))
    r.controller.on_event(SpeechMark("item_1", "started", 1200))
    assert r.playout.flushes == 1
    assert not r.controller.speaking


def test_output_cleared_flushes_playout() -> None:
    r = rig()
    r.controller.on_event(AudioState("resp_1", "started"))
    r.controller.on_event(AudioState("resp_1", "cleared"))
    assert r.playout.flushes == 1


def test_esc_interrupts_a_speaking_assistant() -> None:
    r = rig()
    r.conversation.responding = True
    r.controller.on_key(Key.ESC)
    assert r.conversation.sent == ["interrupt"]
    assert r.playout.flushes == 1


def test_esc_with_nothing_to_interrupt_says_so() -> None:
    r = rig()
    r.controller.on_key(Key.ESC)
    assert r.conversation.sent == []
    assert any(isinstance(e, Notice) for e in r.events)


def test_space_without_push_to_talk_explains_itself() -> None:
    r = rig(vad="server")
    r.controller.on_key(Key.SPACE)
    assert r.conversation.sent == []
    assert any(isinstance(e, Notice) and "--vad off" in e.text for e in r.events)


async def test_push_to_talk_opens_the_mic_then_commits_after_the_tail() -> None:
    r = rig(vad="off")
    assert r.mic.gated  # silence until space
    r.controller.on_key(Key.SPACE)
    assert not r.mic.gated and r.controller.talking
    assert r.conversation.sent == ["clear"]
    assert last_controls(r.events).talking
    r.controller.on_key(Key.SPACE)
    assert r.mic.gated and not r.controller.talking
    assert r.conversation.sent == ["clear"]  # the commit waits for the last frames
    await asyncio.sleep(COMMIT_TAIL_S + 0.05)
    assert r.conversation.sent == ["clear", "commit"]


def test_push_to_talk_interrupts_a_speaking_assistant() -> None:
    r = rig(vad="off")
    r.conversation.responding = True
    r.controller.on_key(Key.SPACE)
    assert r.conversation.sent == ["interrupt", "clear"]
    assert r.playout.flushes == 1


def test_half_duplex_gates_while_the_assistant_plays_and_after_its_echo() -> None:
    r = rig(duplex="half")
    assert not r.mic.gated
    r.controller.on_event(AudioState("resp_1", "started"))
    assert r.mic.gated and last_controls(r.events).gate_closed
    r.controller.on_event(AudioState("resp_1", "stopped"))
    r.controller.tick(playout_depth_ms=60)  # still playing what was buffered
    r.clock.now += GATE_HANGOVER_S + 0.1
    r.controller.tick(playout_depth_ms=60)
    assert r.mic.gated
    r.controller.tick(playout_depth_ms=0)
    assert r.mic.gated  # the hangover starts when playout is empty
    r.clock.now += GATE_HANGOVER_S + 0.01
    r.controller.tick(playout_depth_ms=0)
    assert not r.mic.gated and not last_controls(r.events).gate_closed


def test_full_duplex_never_gates() -> None:
    r = rig(duplex="full")
    r.controller.on_event(AudioState("resp_1", "started"))
    assert not r.mic.gated


def test_mute_survives_the_half_duplex_gate() -> None:
    r = rig(duplex="half")
    r.controller.on_key(Key.MUTE)
    r.controller.on_event(AudioState("resp_1", "started"))
    r.controller.on_event(AudioState("resp_1", "stopped"))
    r.clock.now += GATE_HANGOVER_S + 0.01
    r.controller.tick(playout_depth_ms=0)
    assert r.mic.muted and not r.mic.gated


def test_after_a_barge_in_remote_audio_is_dropped_until_the_next_response() -> None:
    r = rig()
    r.controller.on_event(AudioState("resp_1", "started"))
    assert not r.controller.discard_remote
    r.controller.on_event(SpeechMark("item_2", "started", 3000))
    assert r.controller.discard_remote  # the cut answer's frames still on the wire
    r.controller.on_event(AudioState("resp_1", "cleared"))
    assert r.controller.discard_remote
    r.controller.on_event(ResponseStarted("resp_2"))
    assert not r.controller.discard_remote
