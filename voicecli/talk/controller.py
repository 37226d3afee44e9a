"""What keys and session events do to the microphone, the speaker and the conversation.

No I/O here: the controller flips the mic track's flags, flushes the playout buffer and calls
session commands, and reports its state as Controls for the screen. Decisions (design.md §5):
- barge-in: the service truncates; we flush local playout at once on `speech_started` or
  `output_audio_buffer.cleared`, so the next audio block is already quiet, and drop the cut
  response's audio still in flight until the next response starts;
- Esc: `response.cancel` (when a response is active) + `output_audio_buffer.clear` + flush;
- push-to-talk (vad off): the mic sends silence until space; space again gates it and, after
  a short tail so the last frames reach the service before the data-channel commit, commits
  and asks for a response. Pressing space while the assistant talks interrupts it first;
- half duplex: the mic is gated while assistant audio plays and for a short hangover after
  (the room's echo tail), so laptop speakers do not make the assistant interrupt itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from voicecli.realtime.session_events import AudioState, ResponseStarted, SpeechMark
from voicecli.talk.events import Controls, Ended, Notice, TalkEvent
from voicecli.talk.keys import Key

COMMIT_TAIL_S = 0.1  # push-to-talk: the last mic frames travel on RTP, the commit on SCTP
GATE_HANGOVER_S = 0.3  # half duplex: keep the mic gated while the room's echo dies down


class MicFlags(Protocol):
    muted: bool
    gated: bool


class Flushable(Protocol):
    def flush(self) -> None: ...


class Conversation(Protocol):
    @property
    def responding(self) -> bool: ...

    def interrupt(self) -> None: ...

    def clear_input(self) -> None: ...

    def commit_audio(self) -> None: ...


@dataclass
class Mode:
    vad: str  # server | semantic | off (push-to-talk)
    duplex: str  # full | half


class TalkController:
    def __init__(
        self,
        conversation: Conversation,
        mic: MicFlags,
        playout: Flushable,
        mode: Mode,
        emit: Callable[[TalkEvent], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conversation = conversation
        self._mic = mic
        self._playout = playout
        self._mode = mode
        self._emit = emit
        self._clock = clock
        self.talking = False  # push-to-talk turn open
        self.speaking = False  # assistant audio started and not yet stopped
        self._quiet_since: float | None = None  # half duplex: when the assistant went quiet
        # After a barge-in or Esc, audio of the cut response still in flight (encoded, on the
        # wire) must not reach the speaker: drop remote audio until the next response starts.
        self.discard_remote = False
        self._mic.gated = self.push_to_talk  # push-to-talk: silence until space

    @property
    def push_to_talk(self) -> bool:
        return self._mode.vad == "off"

    def controls(self) -> Controls:
        return Controls(
            muted=self._mic.muted,
            vad=self._mode.vad,
            duplex=self._mode.duplex,
            talking=self.talking,
            gate_closed=self._mode.duplex == "half" and self._mic.gated and not self.talking,
            assistant_speaking=self.speaking,
        )

    # Keys.

    def on_key(self, key: Key) -> None:
        if key is Key.QUIT:
            self._emit(Ended("user"))
            return
        if key is Key.MUTE:
            self._mic.muted = not self._mic.muted
        elif key is Key.ESC:
            self.interrupt()
        elif key is Key.SPACE:
            self._space()
        self._changed()

    def interrupt(self) -> None:
        if not self._conversation.responding and not self.speaking:
            self._emit(Notice("info", "nothing to interrupt"))
            return
        self._conversation.interrupt()
        self._flush()

    def _space(self) -> None:
        if not self.push_to_talk:
            self._emit(Notice("info", "space is push-to-talk; start with --vad off to use it"))
            return
        if not self.talking:
            if self._conversation.responding or self.speaking:
                self.interrupt()
            self._conversation.clear_input()
            self.talking, self._mic.gated = True, False
            return
        self.talking, self._mic.gated = False, True
        asyncio.get_running_loop().call_later(COMMIT_TAIL_S, self._conversation.commit_audio)

    # Session events.

    def on_event(self, event: TalkEvent) -> None:
        if isinstance(event, SpeechMark) and event.state == "started":
            self._flush()  # barge-in: the service truncates, we stop playing at once
        elif isinstance(event, ResponseStarted):
            self.discard_remote = False
        elif isinstance(event, AudioState):
            self._on_audio_state(event.state)

    def _on_audio_state(self, state: str) -> None:
        if state == "cleared":
            self._flush()
        elif state == "started":
            self.discard_remote = False
        was = self.speaking
        self.speaking = state == "started"
        if self.speaking:
            self._quiet_since = None
            self._gate(True)
        else:
            self._quiet_since = self._clock()
        if was != self.speaking:
            self._changed()

    def link_lost(self) -> None:
        """The connection dropped: the reply that was speaking is over (a new one will start)."""
        if self.speaking:
            self.speaking = False
            self._quiet_since = self._clock()
            self._changed()

    def tick(self, playout_depth_ms: float) -> None:
        """Release the half-duplex gate once playout has drained and the echo tail is over."""
        now = self._clock()
        if self._quiet_since is None or self.speaking:
            return
        if playout_depth_ms > 0:
            self._quiet_since = now
        elif now - self._quiet_since >= GATE_HANGOVER_S:
            self._quiet_since = None
            self._gate(False)

    def _gate(self, closed: bool) -> None:
        if self._mode.duplex != "half" or self.talking:
            return
        gated = closed or self.push_to_talk
        if gated != self._mic.gated:
            self._mic.gated = gated
            self._changed()

    def _flush(self) -> None:
        self._playout.flush()
        self.discard_remote = True
        self.speaking = False
        if self._quiet_since is None:
            self._quiet_since = self._clock()

    def _changed(self) -> None:
        self._emit(self.controls())
