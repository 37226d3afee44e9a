"""The client Session (voicecli/realtime/session.py), driven through its Transport seam.

A fake transport records what the session sends (validated like the real channel does) and
feeds it server events parsed by the real event layer, so the session sees what it would see
over WebRTC. Every event fed here is checked to parse as the SDK's typed model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from voicecli.realtime.events import UnknownServerEvent, encode_client_event, parse_server_object
from voicecli.realtime.pricing import PriceTable, UsageTotals
from voicecli.realtime.session import Session
from voicecli.realtime.session_events import (
    AudioState,
    ServiceErrorEvent,
    SessionEvent,
    ToolCallFinished,
)
from voicecli.realtime.tools import ToolRegistry
from voicecli.realtime.transport import Disconnected, TransportEvent
from voicecli.server import shapes

JsonObject = dict[str, Any]

SESSION = shapes.default_session()
CONVERSATION = "conv_test"


class FakeTransport:
    """Our Transport protocol: ``send`` records (after validation), ``events`` reads a queue."""

    def __init__(self) -> None:
        self.sent: list[JsonObject] = []
        self._queue: asyncio.Queue[TransportEvent] = asyncio.Queue()

    def send(self, event: dict[str, Any]) -> None:
        encode_client_event(event)  # raises InvalidEventError, as the real channel does
        self.sent.append(event)

    async def events(self) -> AsyncIterator[TransportEvent]:
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, Disconnected):
                return

    async def close(self) -> None:
        self._queue.put_nowait(Disconnected("closed by voicecli"))

    # The test's side.

    def feed(self, data: JsonObject) -> None:
        event = parse_server_object(data)
        assert not isinstance(event, UnknownServerEvent), f"test event off-schema: {event}"
        self._queue.put_nowait(event)

    def disconnect(self, cause: str) -> None:
        self._queue.put_nowait(Disconnected(cause))

    def types(self) -> list[str]:
        return [e["type"] for e in self.sent]

    def count(self, kind: str) -> int:
        return self.types().count(kind)


class FakeTool:
    """A tool that returns its arguments; optionally it waits for ``gate`` first."""

    name = "lookup"
    description = "Look something up."
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {"q": {"type": "string"}},
        "required": ["q"],
    }

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.gate = gate
        self.calls: list[JsonObject] = []

    async def run(self, arguments: JsonObject) -> str:
        self.calls.append(arguments)
        if self.gate is not None:
            await self.gate.wait()
        return json.dumps({"answer": arguments["q"].upper()})


# Server events, in the GA shapes the SDK types accept.


def _event(kind: str, **fields: Any) -> JsonObject:
    return {"type": kind, "event_id": shapes.new_id("event"), **fields}


def created(response_id: str) -> JsonObject:
    return _event(
        "response.created", response=shapes.response_object(response_id, CONVERSATION, SESSION)
    )


def done(response_id: str, *, text_out: int = 3, audio_out: int = 20) -> JsonObject:
    usage = shapes.usage(text_in=5, audio_in=7, text_out=text_out, audio_out=audio_out)
    response = shapes.response_object(
        response_id, CONVERSATION, SESSION, status="completed", output=[], usage=usage
    )
    return _event("response.done", response=response)


def arguments_done(response_id: str, call_id: str, arguments: str) -> JsonObject:
    return _event(
        "response.function_call_arguments.done",
        response_id=response_id,
        item_id=shapes.new_id("item"),
        output_index=0,
        call_id=call_id,
        name=FakeTool.name,
        arguments=arguments,
    )


def audio_buffer(state: str, response_id: str) -> JsonObject:
    return _event(f"output_audio_buffer.{state}", response_id=response_id)


def transcript_done(response_id: str, text: str) -> JsonObject:
    return _event(
        "response.output_audio_transcript.done",
        response_id=response_id,
        item_id=shapes.new_id("item"),
        output_index=0,
        content_index=0,
        transcript=text,
    )


# Running a session.


class Harness:
    def __init__(self, session: Session, transport: FakeTransport, seen: list[SessionEvent]):
        self.session = session
        self.transport = transport
        self.seen = seen


@contextlib.asynccontextmanager
async def running(*tools: FakeTool) -> AsyncIterator[Harness]:
    transport = FakeTransport()
    seen: list[SessionEvent] = []
    usage = UsageTotals.for_session(PriceTable.load(), "gpt-realtime")
    session = Session(transport, ToolRegistry(tools), usage, seen.append)
    task = asyncio.create_task(session.run())
    try:
        await settle()  # run() is consuming events before the test speaks
        yield Harness(session, transport, seen)
    finally:
        transport.disconnect("test over")
        async with asyncio.timeout(2):
            await task


async def settle(turns: int = 50) -> None:
    """Let the loop run every ready callback (event handling, tool tasks) many times over."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    """Wait for session state (it has no public event to wait on)."""
    async with asyncio.timeout(timeout_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.001)


def outputs(transport: FakeTransport) -> list[JsonObject]:
    return [
        e["item"]
        for e in transport.sent
        if e["type"] == "conversation.item.create" and e["item"]["type"] == "function_call_output"
    ]


# ---- the response lifecycle -------------------------------------------------------------------


async def test_a_response_requested_while_one_is_active_waits_for_its_done() -> None:
    async with running() as h:
        h.session.say("hello")
        h.session.request_response()  # the first create is still in flight
        await settle()
        assert h.transport.types() == ["conversation.item.create", "response.create"]

        h.transport.feed(created("resp_1"))
        await settle()
        h.session.request_response()  # now a response is active
        await settle()
        assert h.transport.count("response.create") == 1

        h.transport.feed(done("resp_1"))
        await until(lambda: h.transport.count("response.create") == 2)
        h.transport.feed(created("resp_2"))
        h.transport.feed(done("resp_2"))
        await settle()
        # The two requests made while resp_1 ran became one response, not two.
        assert h.transport.count("response.create") == 2
        assert not h.session.busy()


async def test_a_tool_that_finishes_first_still_waits_for_response_done() -> None:
    tool = FakeTool()
    async with running(tool) as h:
        h.session.say("look it up")
        h.transport.feed(created("resp_1"))
        h.transport.feed(arguments_done("resp_1", "call_1", '{"q": "paris"}'))
        await until(lambda: len(h.session.tool_results) == 1)
        await settle()
        assert tool.calls == [{"q": "paris"}]
        assert outputs(h.transport) == [], "no output before the response that called is done"
        assert h.transport.count("response.create") == 1
        assert h.session.busy()

        h.transport.feed(done("resp_1"))
        await until(lambda: h.transport.count("response.create") == 2)
    after_done = h.transport.sent[2:]
    assert [e["type"] for e in after_done] == ["conversation.item.create", "response.create"]
    # Exactly the three documented fields: extra ones can make the service drop the channel.
    assert after_done[0]["item"] == {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": '{"answer": "PARIS"}',
    }
    assert h.session.tool_results[0].ok
    assert any(isinstance(e, ToolCallFinished) for e in h.seen)


async def test_a_slow_tool_sends_its_output_when_it_finishes_after_response_done() -> None:
    gate = asyncio.Event()
    async with running(FakeTool(gate)) as h:
        h.session.say("look it up")
        h.transport.feed(created("resp_1"))
        h.transport.feed(arguments_done("resp_1", "call_1", '{"q": "oslo"}'))
        h.transport.feed(done("resp_1"))
        await settle()
        assert outputs(h.transport) == []
        assert h.transport.count("response.create") == 1
        assert h.session.busy(), "a running tool keeps the session busy"

        gate.set()
        await until(lambda: h.transport.count("response.create") == 2)
        assert h.transport.types()[-2:] == ["conversation.item.create", "response.create"]
        assert outputs(h.transport)[0]["output"] == '{"answer": "OSLO"}'


async def test_two_calls_in_one_response_send_both_outputs_then_one_create() -> None:
    async with running(FakeTool()) as h:
        h.session.say("two lookups")
        h.transport.feed(created("resp_1"))
        h.transport.feed(arguments_done("resp_1", "call_a", '{"q": "a"}'))
        h.transport.feed(arguments_done("resp_1", "call_b", '{"q": "b"}'))
        h.transport.feed(done("resp_1"))
        await until(lambda: h.transport.count("response.create") == 2)
        await settle()
        assert h.transport.types()[2:] == [
            "conversation.item.create",
            "conversation.item.create",
            "response.create",
        ]
        assert [o["call_id"] for o in outputs(h.transport)] == ["call_a", "call_b"]


async def test_a_bad_call_from_the_model_still_gets_an_output() -> None:
    async with running(FakeTool()) as h:
        h.session.say("bad call")
        h.transport.feed(created("resp_1"))
        h.transport.feed(arguments_done("resp_1", "call_1", '{"q": 42}'))
        h.transport.feed(done("resp_1"))
        await until(lambda: h.transport.count("response.create") == 2)
    (output,) = outputs(h.transport)
    assert output["call_id"] == "call_1"
    assert "arguments.q: expected string" in json.loads(output["output"])["error"]
    assert not h.session.tool_results[0].ok


async def test_create_refused_as_already_active_is_retried_after_response_done() -> None:
    async with running() as h:
        h.session.say("hello")
        first_create = h.transport.sent[-1]
        # The server's VAD started a response at the same moment: our create is refused.
        h.transport.feed(created("resp_vad"))
        h.transport.feed(
            shapes.error_event(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress: resp_vad.",
                event_id=first_create["event_id"],
            )
        )
        await settle()
        assert h.transport.count("response.create") == 1
        assert h.session.busy(), "the refused request is still wanted"
        assert [e.code for e in h.session.errors] == ["conversation_already_has_active_response"]

        h.transport.feed(done("resp_vad"))
        await until(lambda: h.transport.count("response.create") == 2)
        h.transport.feed(created("resp_2"))
        h.transport.feed(done("resp_2"))
        await settle()
        assert h.transport.count("response.create") == 2
        assert not h.session.busy()


# ---- waiting for the answer -------------------------------------------------------------------


async def test_wait_idle_lasts_until_the_audio_has_stopped() -> None:
    async with running() as h:
        h.session.say("hello")
        idle = asyncio.create_task(h.session.wait_idle())
        h.transport.feed(created("resp_1"))
        h.transport.feed(audio_buffer("started", "resp_1"))
        h.transport.feed(transcript_done("resp_1", "Hi there."))
        h.transport.feed(done("resp_1"))
        await settle()
        # response.done comes before the audio has finished playing (RTP never stops).
        assert not idle.done()
        assert h.session.busy()

        h.transport.feed(audio_buffer("stopped", "resp_1"))
        async with asyncio.timeout(1):
            await idle
    assert not h.session.busy()
    assert h.session.assistant_text == {"resp_1": "Hi there."}
    states = [e.state for e in h.seen if isinstance(e, AudioState)]
    assert states == ["started", "stopped"]


async def test_cleared_audio_ends_the_wait_too() -> None:
    async with running() as h:
        h.session.say("hello")
        h.transport.feed(created("resp_1"))
        h.transport.feed(audio_buffer("started", "resp_1"))
        h.transport.feed(done("resp_1"))
        await settle()
        assert h.session.busy()
        h.transport.feed(audio_buffer("cleared", "resp_1"))
        async with asyncio.timeout(1):
            await h.session.wait_idle()


async def test_usage_adds_up_over_responses() -> None:
    async with running() as h:
        h.session.say("one")
        h.transport.feed(created("resp_1"))
        h.transport.feed(done("resp_1", text_out=3, audio_out=20))
        await until(lambda: h.session.usage.responses == 1)
        h.session.say("two")
        h.transport.feed(created("resp_2"))
        h.transport.feed(done("resp_2", text_out=4, audio_out=30))
        await until(lambda: h.session.usage.responses == 2)
    tokens = h.session.usage.tokens
    assert (tokens.text_in, tokens.audio_in) == (10, 14)
    assert (tokens.text_out, tokens.audio_out) == (7, 50)
    assert tokens.total == 81


async def test_disconnected_ends_run_and_releases_wait_idle() -> None:
    transport = FakeTransport()
    usage = UsageTotals.for_session(PriceTable.load(), "gpt-realtime")
    session = Session(transport, ToolRegistry(), usage)
    async with asyncio.timeout(2), asyncio.TaskGroup() as tasks:
        run = tasks.create_task(session.run())
        await settle()
        session.say("hello")
        transport.feed(created("resp_1"))
        idle = tasks.create_task(session.wait_idle())
        await settle()
        assert not idle.done()
        transport.disconnect("the data channel closed")
        await run
        await idle
    assert session.ended == Disconnected("the data channel closed")
    assert session.busy(), "the answer never came: the caller must see that the call ended"


async def test_a_service_error_quoting_a_key_reaches_no_one_with_the_key() -> None:
    key = "sk-proj-Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789"
    async with running() as h:
        error = {
            "type": "invalid_request_error",
            "code": "invalid_api_key",
            "message": f"bad {key}",
        }
        h.transport.feed(_event("error", error=error))
        await until(lambda: bool(h.session.errors))
    shown = [e for e in h.seen if isinstance(e, ServiceErrorEvent)]
    assert [e.code for e in shown] == ["invalid_api_key"]
    assert key not in repr(shown) and key not in repr(h.session.errors)
    assert shown[0].message.startswith("bad sk-")  # masked, still recognisable
