"""The client Session over a transport whose service cannot see playback (the WebSocket).

Same seam as test_client_session.py: a fake transport, now with ``service_tracks_playback``
False, and a recording LocalPlayout hook standing for the talk playout (flush + truncate).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tests.unit.test_client_session import (
    FakeTransport,
    _event,
    created,
    done,
    settle,
    until,
)
from voicecli.realtime.pricing import PriceTable, UsageTotals
from voicecli.realtime.session import Session
from voicecli.realtime.session_events import (
    AudioState,
    SessionEvent,
    SpeechMark,
    TurnCommitted,
    UserText,
)
from voicecli.realtime.tools import ToolRegistry

JsonObject = dict[str, object]


class FakeSocket(FakeTransport):
    service_tracks_playback = False


class Cuts:
    """The LocalPlayout hook: notes each cut, and what the session had told the UI by then."""

    def __init__(self, seen: list[SessionEvent]) -> None:
        self.seen = seen
        self.at: list[int] = []  # len(seen) at each cut

    def cut(self) -> None:
        self.at.append(len(self.seen))


def delta(response_id: str, item_id: str = "item_a1") -> JsonObject:
    return _event(
        "response.output_audio.delta",
        response_id=response_id,
        item_id=item_id,
        output_index=0,
        content_index=0,
        delta="AAAA",
    )


def audio_done(response_id: str, item_id: str = "item_a1") -> JsonObject:
    return _event(
        "response.output_audio.done",
        response_id=response_id,
        item_id=item_id,
        output_index=0,
        content_index=0,
    )


class Harness:
    def __init__(self, session: Session, transport: FakeSocket, seen: list[SessionEvent]):
        self.session, self.transport, self.seen = session, transport, seen

    def audio_states(self) -> list[str]:
        return [e.state for e in self.seen if isinstance(e, AudioState)]


@contextlib.asynccontextmanager
async def running(with_playout: bool) -> AsyncIterator[tuple[Harness, Cuts]]:
    transport = FakeSocket()
    seen: list[SessionEvent] = []
    cuts = Cuts(seen)
    usage = UsageTotals.for_session(PriceTable.load(), "gpt-realtime")
    session = Session(
        transport, ToolRegistry(()), usage, seen.append, cuts if with_playout else None
    )
    task = asyncio.create_task(session.run())
    try:
        await settle()
        yield Harness(session, transport, seen), cuts
    finally:
        transport.disconnect("test over")
        async with asyncio.timeout(2):
            await task


async def test_without_local_playout_speech_is_the_deltas_until_output_audio_done() -> None:
    async with running(with_playout=False) as (h, _):
        h.session.say("hi")
        h.transport.feed(created("resp_1"))
        h.transport.feed(delta("resp_1"))
        h.transport.feed(delta("resp_1"))
        await settle()
        assert h.audio_states() == ["started"]  # once, at the first delta
        assert h.session.busy()
        h.transport.feed(audio_done("resp_1"))
        h.transport.feed(done("resp_1"))
        await until(lambda: not h.session.busy())
        assert h.audio_states() == ["started", "stopped"]


async def test_with_local_playout_speech_ends_when_the_playout_drains_after_done() -> None:
    async with running(with_playout=True) as (h, _):
        h.session.say("hi")
        h.transport.feed(created("resp_1"))
        h.transport.feed(delta("resp_1"))
        await settle()
        h.session.playout_drained()  # an underrun mid-reply is not the end
        assert h.audio_states() == ["started"]
        h.transport.feed(audio_done("resp_1"))
        h.transport.feed(done("resp_1"))
        await settle()
        assert h.audio_states() == ["started"] and h.session.busy()  # still playing here
        h.session.playout_drained()
        assert h.audio_states() == ["started", "stopped"]
        await until(lambda: not h.session.busy())


async def test_interrupt_cancels_and_cuts_the_playout_but_never_clears_the_service_buffer() -> None:
    async with running(with_playout=True) as (h, cuts):
        h.session.say("tell me more")
        h.transport.feed(created("resp_1"))
        h.transport.feed(delta("resp_1"))
        await settle()
        h.session.interrupt()
        assert "response.cancel" in h.transport.types()
        assert "output_audio_buffer.clear" not in h.transport.types()
        assert len(cuts.at) == 1
        assert h.audio_states() == ["started", "cleared"]
        h.session.interrupt()  # nothing plays any more: nothing to cut
        assert len(cuts.at) == 1


async def test_barge_in_cuts_the_playout_before_the_ui_hears_of_the_speech() -> None:
    async with running(with_playout=True) as (h, cuts):
        h.transport.feed(created("resp_1"))
        h.transport.feed(delta("resp_1"))
        await settle()
        h.transport.feed(
            _event("input_audio_buffer.speech_started", audio_start_ms=1200, item_id="item_u2")
        )
        await settle()
        (cut,) = cuts.at
        marks = [i for i, e in enumerate(h.seen) if isinstance(e, SpeechMark)]
        assert marks and cut <= marks[0]  # the controller's own flush finds nothing left
        assert h.audio_states() == ["started", "cleared"]


async def test_a_text_turn_and_a_commit_are_reported_with_their_item_ids() -> None:
    async with running(with_playout=False) as (h, _):
        h.session.say("hello")
        (sent,) = [e for e in h.transport.sent if e["type"] == "conversation.item.create"]
        (said,) = [e for e in h.seen if isinstance(e, UserText)]
        assert said == UserText(sent["item"]["id"], "hello", final=True)
        h.transport.feed(
            _event("input_audio_buffer.committed", item_id="item_u9", previous_item_id=None)
        )
        await settle()
        assert TurnCommitted("item_u9", None) in h.seen
