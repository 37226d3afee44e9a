"""The client's conversation state machine. Transport-agnostic: no Rich, sounddevice or aiortc.

It turns transport events into SessionEvents (for `ask`, the dashboard, transcripts) and keeps
the response lifecycle right (realtime-protocol.md §5):
- never two ``response.create`` at once: one waits until the active response is done;
- a tool call runs when its arguments are complete; its output goes back (a string, only
  type/call_id/output) and the follow-up ``response.create`` is sent only after the
  ``response.done`` of the response that made the call;
- the end of assistant speech is ``output_audio_buffer.stopped`` (RTP never stops).

Over a WebSocket (a transport whose ``service_tracks_playback`` is False) the service sends no
``output_audio_buffer.*`` events and cannot know what was played, so the client decides:
speech starts at a response's first ``response.output_audio.delta`` and ends when the local
playout has drained after ``response.output_audio.done`` (:meth:`Session.playout_drained`), or at
``output_audio.done`` itself when nothing plays locally (``ask``). Barge-in and interrupts cut
the local playout through the :class:`LocalPlayout` hook, which truncates the item at what was
heard; ``output_audio_buffer.clear`` is never sent there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from voicecli.realtime import events as ev
from voicecli.realtime.events import ServerEvent, UnknownServerEvent, event_type
from voicecli.realtime.pricing import UsageTotals
from voicecli.realtime.session_events import (
    AssistantText,
    AudioState,
    ResponseFinished,
    ResponseStarted,
    ServiceErrorEvent,
    SessionEvent,
    SpeechMark,
    ToolCallFinished,
    ToolCallStarted,
    TurnCommitted,
    UserText,
)
from voicecli.realtime.tools import ToolRegistry, ToolResult
from voicecli.realtime.transport import (
    Disconnected,
    LinkState,
    NetworkStats,
    Transport,
    TransportEvent,
)
from voicecli.redact import redact

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]


@dataclass
class _Response:
    id: str
    calls: list[asyncio.Task[ToolResult]] = field(default_factory=list)
    audio: bool = False  # output audio started and has not stopped yet
    audio_done: bool = False  # WebSocket: all of its audio arrived; it stops once played out
    done: bool = False


class LocalPlayout(Protocol):
    """The client's own playout, when the service cannot see it (WebSocket)."""

    def cut(self) -> None:
        """Stop playing at once and tell the service how much of the reply was heard."""
        ...


class Session:
    """One conversation over one transport."""

    def __init__(
        self,
        transport: Transport,
        tools: ToolRegistry,
        usage: UsageTotals,
        emit: Callable[[SessionEvent], None] = lambda _: None,
        playout: LocalPlayout | None = None,
    ) -> None:
        self._transport = transport
        self._tools = tools
        self.usage = usage
        self._emit = emit
        self._playout = playout
        self._tracks_playback = bool(getattr(transport, "service_tracks_playback", True))
        self._responses: dict[str, _Response] = {}
        self._active: str | None = None
        self._create_in_flight = False
        self._create_wanted = False
        self._tasks: asyncio.TaskGroup | None = None
        self.assistant_text: dict[str, str] = {}  # response id → transcript so far
        self.user_text: dict[str, str] = {}  # item id → transcript
        self.tool_results: list[ToolResult] = []
        self.errors: list[ServiceErrorEvent] = []
        self.ended: Disconnected | None = None
        self.gone = asyncio.Event()  # set when the transport disconnects
        self._changed = asyncio.Event()

    async def run(self) -> None:
        """Consume the transport's events until it disconnects; owns the tool tasks."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            async for event in self._transport.events():
                self._handle(event)
                self._changed.set()
        self._tasks = None

    # Commands.

    def send(self, event: JsonObject) -> None:
        self._transport.send(event)

    def say(self, text: str) -> None:
        """A user text turn, then a response."""
        event = ev.user_text(text)
        item_id = event["item"]["id"] = ev.new_id("item")  # ours, so the turn has a place
        self.send(event)
        self._emit(UserText(item_id, text, final=True))
        self.request_response()

    def commit_audio(self) -> None:
        """Push-to-talk: what the mic sent since the last commit is the user's turn."""
        self.send(ev.input_audio_buffer_commit())
        self.request_response()

    def clear_input(self) -> None:
        """Push-to-talk: forget what the mic sent before the user started talking."""
        self.send(ev.input_audio_buffer_clear())

    def request_response(self) -> None:
        if self._active is not None or self._create_in_flight:
            self._create_wanted = True
            return
        self._create_in_flight = True
        self.send(ev.response_create())

    def interrupt(self) -> None:
        """Stop the assistant now: cancel the response, clear the audio it already queued."""
        if self._active is not None:
            self.send(ev.response_cancel())
        if self._tracks_playback:
            self.send(ev.output_audio_buffer_clear())
        else:
            self._cut_playout()

    def playout_drained(self) -> None:
        """WebSocket: the local playout ran dry; replies whose audio is all here have ended."""
        for state in self._responses.values():
            if state.audio and state.audio_done:
                self._stop_audio(state, "stopped")

    @property
    def responding(self) -> bool:
        """A response is being generated or its audio is still playing (Esc has work to do)."""
        return self._active is not None or any(r.audio for r in self._responses.values())

    # Waiting.

    def busy(self) -> bool:
        """A response is wanted, running, calling tools, or its audio is still playing."""
        pending = self._create_in_flight or self._create_wanted or self._active is not None
        running = any(
            not r.done or r.audio or any(not c.done() for c in r.calls)
            for r in self._responses.values()
        )
        return pending or running

    async def wait_idle(self) -> None:
        """Until nothing is pending (or the link is gone)."""
        while self.busy() and self.ended is None:
            self._changed.clear()
            await self._changed.wait()

    # Events.

    def _handle(self, event: TransportEvent) -> None:
        if isinstance(event, Disconnected):
            self.ended = event
            self.gone.set()
        elif isinstance(event, LinkState | NetworkStats):
            self._emit(event)  # link facts go straight to the UI
        else:
            self._on_server_event(event)

    def _on_server_event(self, event: ServerEvent) -> None:
        kind = event_type(event)
        data = _as_dict(event)
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, data)

    def _response_created(self, data: JsonObject) -> None:
        response_id = data["response"]["id"]
        self._create_in_flight = False
        self._active = response_id
        self._responses[response_id] = _Response(response_id)
        self._emit(ResponseStarted(response_id))

    def _response_done(self, data: JsonObject) -> None:
        response = data["response"]
        state = self._responses.setdefault(response["id"], _Response(response["id"]))
        state.done = True
        if self._active == response["id"]:
            self._active = None
        self.usage.add_response(response.get("usage"))
        details = response.get("status_details") or {}
        self._emit(
            ResponseFinished(
                response["id"], response["status"], details.get("reason"), response.get("usage")
            )
        )
        self._spawn(self._after_response(state))

    async def _after_response(self, state: _Response) -> None:
        """Send this response's tool outputs, then ask for the next response."""
        results = [await call for call in state.calls]
        for result in results:
            self.send(ev.function_call_output(result.call_id, result.output))
        if results or self._create_wanted:
            self._create_wanted = False
            self.request_response()
        self._changed.set()

    def _arguments_done(self, data: JsonObject) -> None:
        state = self._responses.setdefault(data["response_id"], _Response(data["response_id"]))
        self._emit(ToolCallStarted(data["call_id"], data["name"], data["arguments"]))
        state.calls.append(self._spawn(self._call(data)))

    async def _call(self, data: JsonObject) -> ToolResult:
        result = await self._tools.call(data["name"], data["arguments"], data["call_id"])
        self.tool_results.append(result)
        self._emit(ToolCallFinished(result))
        return result

    def _transcript_delta(self, data: JsonObject) -> None:
        response_id = data["response_id"]
        self.assistant_text[response_id] = self.assistant_text.get(response_id, "") + data["delta"]
        self._emit(AssistantText(response_id, data["item_id"], data["delta"], final=False))

    def _transcript_done(self, data: JsonObject) -> None:
        text = str(data.get("transcript") or data.get("text") or "")
        self.assistant_text[data["response_id"]] = text
        self._emit(AssistantText(data["response_id"], data["item_id"], text, final=True))

    def _user_transcript_delta(self, data: JsonObject) -> None:
        self._emit(UserText(data["item_id"], data.get("delta") or "", final=False))

    def _speech(self, data: JsonObject) -> None:
        started = data["type"] == "input_audio_buffer.speech_started"
        position = data.get("audio_start_ms" if started else "audio_end_ms") or 0
        if started and not self._tracks_playback:
            self._cut_playout()  # the service cancels over a WebSocket, but cannot truncate
        self._emit(SpeechMark(data["item_id"], "started" if started else "stopped", position))

    def _user_transcript(self, data: JsonObject) -> None:
        self.user_text[data["item_id"]] = data["transcript"]
        self._emit(UserText(data["item_id"], data["transcript"], final=True))
        self.usage.add_transcription(data.get("usage"))

    def _committed(self, data: JsonObject) -> None:
        self._emit(TurnCommitted(data["item_id"], data.get("previous_item_id")))

    def _audio(self, data: JsonObject) -> None:
        state = self._responses.setdefault(data["response_id"], _Response(data["response_id"]))
        started = data["type"] == "output_audio_buffer.started"
        state.audio = started
        self._emit(AudioState(data["response_id"], data["type"].rsplit(".", 1)[-1]))

    # Speech over a WebSocket: the client's playout decides (module docstring).

    def _audio_delta(self, data: JsonObject) -> None:
        if self._tracks_playback:
            return
        state = self._responses.setdefault(data["response_id"], _Response(data["response_id"]))
        if not state.audio:
            state.audio, state.audio_done = True, False
            self._emit(AudioState(state.id, "started"))

    def _audio_done(self, data: JsonObject) -> None:
        state = self._responses.get(data["response_id"])
        if self._tracks_playback or state is None or not state.audio:
            return
        if self._playout is None:  # nothing plays locally: the speech is all here
            self._stop_audio(state, "stopped")
        else:
            state.audio_done = True

    def _stop_audio(self, state: _Response, how: str) -> None:
        state.audio = state.audio_done = False
        self._emit(AudioState(state.id, how))
        self._changed.set()

    def _cut_playout(self) -> None:
        if not any(state.audio for state in self._responses.values()):
            return
        if self._playout is not None:
            self._playout.cut()
        for state in self._responses.values():
            if state.audio:
                self._stop_audio(state, "cleared")

    def _error(self, data: JsonObject) -> None:
        error = data["error"]
        # Redacted here, where the text enters: the dashboard, `ask --json`, transcripts and
        # logs all show it (a service error may quote a key it refused).
        message = redact(error.get("message") or "")
        failure = ServiceErrorEvent(error.get("code"), message, error.get("event_id"))
        if error.get("code") == "conversation_already_has_active_response":
            self._create_in_flight, self._create_wanted = False, True
        self.errors.append(failure)
        self._emit(failure)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        if self._tasks is None:
            raise RuntimeError("Session.run() is not running")
        return self._tasks.create_task(coro)


_HANDLERS: dict[str, Callable[[Session, JsonObject], None]] = {
    "response.created": Session._response_created,
    "response.done": Session._response_done,
    "response.function_call_arguments.done": Session._arguments_done,
    "response.output_audio_transcript.delta": Session._transcript_delta,
    "response.output_text.delta": Session._transcript_delta,
    "response.output_audio_transcript.done": Session._transcript_done,
    "response.output_text.done": Session._transcript_done,
    "conversation.item.input_audio_transcription.delta": Session._user_transcript_delta,
    "conversation.item.input_audio_transcription.completed": Session._user_transcript,
    "input_audio_buffer.speech_started": Session._speech,
    "input_audio_buffer.speech_stopped": Session._speech,
    "input_audio_buffer.committed": Session._committed,
    "response.output_audio.delta": Session._audio_delta,
    "response.output_audio.done": Session._audio_done,
    "output_audio_buffer.started": Session._audio,
    "output_audio_buffer.stopped": Session._audio,
    "output_audio_buffer.cleared": Session._audio,
    "error": Session._error,
}


def _as_dict(event: ServerEvent) -> JsonObject:
    if isinstance(event, UnknownServerEvent):
        return event.raw
    dumped: JsonObject = event.model_dump(mode="json", exclude_unset=False)
    return dumped
