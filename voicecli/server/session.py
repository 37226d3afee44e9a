"""One call's realtime session in `voicecli serve`: client events in, server events and audio out.

Transport-agnostic: the peer (WebRTC) or a later WebSocket endpoint gives it a Link to send
events on, feeds it decoded input audio, and pulls output audio from its OutputBuffer. Every
handler is synchronous and runs on the event loop; work that waits (transcription, a response
generating in real time) runs as tasks in the session's TaskGroup.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from voicecli.realtime.schema import check_client_event, check_server_event
from voicecli.server import shapes
from voicecli.server.generation import ResponseContext, ResponseRun
from voicecli.server.playback import OutputBuffer
from voicecli.server.responders import (
    Pcm,
    Responder,
    ResponseRequest,
    ToolOutput,
    Trigger,
    duration_s,
)
from voicecli.server.shapes import JsonObject, new_id
from voicecli.server.vad import EnergyVad, SpeechStarted, SpeechStopped, VadSettings

log = logging.getLogger(__name__)

MIN_COMMIT_MS = 100  # the service refuses to commit less (input_audio_buffer_commit_empty)
_ITEM_EVENTS = ("conversation.item.added", "conversation.item.done")


class Link(Protocol):
    """What the session needs from its transport."""

    def send_text(self, text: str) -> None: ...

    def close_events(self) -> None:
        """Close the event channel (strict fault mode), leaving the call up."""
        ...

    def drop(self) -> None:
        """End the whole call at once (fault injection)."""
        ...


class WireAudio(Protocol):
    """WebSocket: audio travels inside events as base64 (24 kHz PCM16), not as RTP."""

    def encode(self, pcm: Pcm) -> str:
        """48 kHz output audio → a response.output_audio.delta payload."""
        ...

    def decode(self, payload: str) -> Pcm:
        """An input_audio_buffer.append payload → 48 kHz; ValueError when it is not audio."""
        ...


class ServerSchemaError(RuntimeError):
    """voicecli serve was about to send an off-schema event: a bug in the server."""


@dataclass
class SessionOptions:
    generation_speed: float = 4.0  # "the model" generates this many times faster than real time
    strict_tool_output: bool = False  # close the data channel on a malformed tool output
    drop_on: str | None = None  # drop the call when the client sends this event type
    wire_audio: WireAudio | None = None  # set over WebSocket; None over WebRTC (RTP)


@dataclass
class _Pending:
    """User input not yet answered by a response."""

    text: str | None = None
    audio_item: str | None = None
    audio: Pcm | None = None
    tool_outputs: list[ToolOutput] = field(default_factory=list)


class CallSession:
    """The conversation state machine of one call."""

    def __init__(
        self,
        link: Link,
        responder: Responder,
        session: JsonObject,
        options: SessionOptions | None = None,
    ) -> None:
        self._link = link
        self._responder = responder
        self.session = session
        self._options = options or SessionOptions()
        self.output = OutputBuffer()
        self.conversation_id = new_id("conv")
        self._vad = EnergyVad(VadSettings.from_turn_detection(self._turn_detection()))
        self._items: dict[str, JsonObject] = {}
        self._last_item: str | None = None
        self._calls: dict[str, str] = {}  # call_id → function name
        self._pending = _Pending()
        self._transcripts: dict[str, asyncio.Task[str | None]] = {}
        self._active: tuple[ResponseRun, asyncio.Task[None]] | None = None
        self._speech_item: str | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._closed = asyncio.Event()
        self.received: list[JsonObject] = []  # every valid client event, for tests and logs

    async def run(self) -> None:
        """Own the session's tasks until close()."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            await self._closed.wait()
            self._cancel_active("client_cancelled", send=False)
            for task in self._transcripts.values():
                task.cancel()
        self._tasks = None

    def close(self) -> None:
        self._closed.set()

    # Inputs from the transport.

    def on_open(self) -> None:
        self._emit(
            {"type": "session.created", "event_id": new_id("event"), "session": self.session}
        )

    def on_message(self, text: str) -> None:
        try:
            event = json.loads(text)
        except ValueError:
            self._error("invalid_json", "The message is not valid JSON.", param=None)
            return
        if not isinstance(event, dict):
            self._error("invalid_event", "The event must be a JSON object.", param=None)
            return
        self._dispatch(event)

    def on_audio(self, pcm: Pcm) -> None:
        """Decoded caller audio, 48 kHz mono, in arrival order."""
        for vad_event in self._vad.feed(pcm):
            if isinstance(vad_event, SpeechStarted):
                self._speech_started(vad_event)
            elif isinstance(vad_event, SpeechStopped):
                self._speech_stopped(vad_event)

    def pull_audio(self, samples: int) -> Pcm:
        """The next output samples for the paced track; reports drained responses."""
        pcm = self.output.pull(samples)
        for response_id in self.output.take_drained():
            self._emit_simple("output_audio_buffer.stopped", response_id=response_id)
        return pcm

    def expire(self) -> None:
        """The session hit its maximum duration (realtime-protocol.md §7)."""
        self._emit(
            shapes.error_event(
                "session_expired", "Your session hit the maximum duration of 60 minutes."
            )
        )
        self._link.drop()

    # Client events.

    def _dispatch(self, event: JsonObject) -> None:
        event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        problem = check_client_event(event)
        if problem is not None:
            if self._strict_tool_fault(event):
                self._link.close_events()
                return
            self._error(problem.code, problem.message, param=problem.param, event_id=event_id)
            return
        self.received.append(event)
        if event["type"] == self._options.drop_on:
            self._link.drop()
            return
        handler = self._handlers().get(event["type"])
        if handler is None:
            self._error(
                "unsupported_event",
                f"{event['type']} is not supported by voicecli serve.",
                param="type",
                event_id=event_id,
            )
            return
        handler(event)

    def _handlers(self) -> dict[str, Callable[[JsonObject], None]]:
        return {
            "session.update": self._session_update,
            "conversation.item.create": self._item_create,
            "conversation.item.retrieve": self._item_retrieve,
            "conversation.item.delete": self._item_delete,
            "conversation.item.truncate": self._item_truncate,
            "input_audio_buffer.commit": self._commit,
            "input_audio_buffer.clear": self._input_clear,
            "input_audio_buffer.append": self._append,
            "output_audio_buffer.clear": self._output_clear,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
        }

    def _strict_tool_fault(self, event: JsonObject) -> bool:
        item = event.get("item")
        return (
            self._options.strict_tool_output
            and event.get("type") == "conversation.item.create"
            and isinstance(item, dict)
            and item.get("type") == "function_call_output"
        )

    def _session_update(self, event: JsonObject) -> None:
        update = dict(event["session"])
        if update.get("type") != "realtime":
            self._error(
                "invalid_value",
                "Passing a transcription session update event to a "
                "realtime session is not allowed.",
                param="session.type",
                event_id=event.get("event_id"),
            )
            return
        self.session = shapes.merge(self.session, update)
        settings = VadSettings.from_turn_detection(self._turn_detection())
        if settings != self._vad.settings:
            self._vad.configure(settings)
        self._emit(
            {"type": "session.updated", "event_id": new_id("event"), "session": self.session}
        )

    def _item_create(self, event: JsonObject) -> None:
        item = dict(event["item"])
        if item["type"] == "function_call_output" and item["call_id"] not in self._calls:
            if self._options.strict_tool_output:
                self._link.close_events()
                return
            self._error(
                "invalid_value",
                f"Tool call ID '{item['call_id']}' not found in conversation.",
                param="item.call_id",
                event_id=event.get("event_id"),
            )
            return
        item.setdefault("id", new_id("item"))
        item.setdefault("status", "completed")
        if item["type"] == "function_call":  # a client restoring history: its output may follow
            self._calls[item["call_id"]] = item["name"]
        self._add_item(item, event.get("previous_item_id"))
        self._note_input(item)

    def _note_input(self, item: JsonObject) -> None:
        if item["type"] == "function_call_output":
            name = self._calls[item["call_id"]]
            self._pending.tool_outputs.append(ToolOutput(item["call_id"], name, item["output"]))
        elif item["type"] == "message" and item.get("role") == "user":
            texts = [c.get("text", "") for c in item["content"] if c.get("type") == "input_text"]
            if texts:
                self._pending.text = " ".join(texts)

    def _item_retrieve(self, event: JsonObject) -> None:
        item = self._items.get(event["item_id"])
        if item is None:
            self._missing_item("item_retrieve_invalid_item_id", event)
            return
        self._emit_simple("conversation.item.retrieved", item=item)

    def _item_delete(self, event: JsonObject) -> None:
        if self._items.pop(event["item_id"], None) is None:
            self._missing_item("item_delete_invalid_item_id", event)
            return
        self._emit_simple("conversation.item.deleted", item_id=event["item_id"])

    def _item_truncate(self, event: JsonObject) -> None:
        item = self._items.get(event["item_id"])
        if item is None or item.get("role") != "assistant":
            self._missing_item("item_truncate_invalid_item_id", event)
            return
        played = self.output.played_ms(event["item_id"])
        if event["audio_end_ms"] > played:
            self._error(
                "invalid_value",
                f"Audio content of {played}ms is already shorter than {event['audio_end_ms']}ms",
                param="audio_end_ms",
                event_id=event.get("event_id"),
            )
            return
        self._emit_simple(
            "conversation.item.truncated",
            item_id=event["item_id"],
            content_index=event["content_index"],
            audio_end_ms=event["audio_end_ms"],
        )

    def _missing_item(self, code: str, event: JsonObject) -> None:
        self._error(
            code,
            f"Item with item_id '{event['item_id']}' not found.",
            param="item_id",
            event_id=event.get("event_id"),
        )

    def _commit(self, event: JsonObject) -> None:
        audio = self._vad.commit()
        if duration_s(audio) * 1000 < MIN_COMMIT_MS:
            self._error(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has "
                f"{duration_s(audio) * 1000:.2f}ms of audio.",
                param=None,
                event_id=event.get("event_id"),
            )
            return
        self._commit_audio(new_id("item"), audio)

    def _input_clear(self, event: JsonObject) -> None:
        self._vad.clear()
        self._emit_simple("input_audio_buffer.cleared")

    def _append(self, event: JsonObject) -> None:
        wire = self._options.wire_audio
        if wire is not None:
            self._append_audio(wire, event)
            return
        # Over WebRTC the microphone arrives as RTP; the real service's behaviour for append
        # on a WebRTC session is unconfirmed (realtime-protocol.md §4.1), so say so plainly.
        self._error(
            "unsupported_event",
            "input_audio_buffer.append is not used over WebRTC; send audio on the RTP track.",
            param="type",
            event_id=event.get("event_id"),
        )

    def _append_audio(self, wire: WireAudio, event: JsonObject) -> None:
        try:
            pcm = wire.decode(event["audio"])
        except ValueError:
            self._error(
                "invalid_value",
                "Invalid 'audio': expected base64-encoded audio/pcm.",
                param="audio",
                event_id=event.get("event_id"),
            )
            return
        self.on_audio(pcm)

    def _output_clear(self, event: JsonObject) -> None:
        if self._options.wire_audio is not None:  # the output audio buffer is WebRTC/SIP only
            self._error(
                "unsupported_event",
                "output_audio_buffer.clear is only supported for WebRTC and SIP sessions.",
                param="type",
                event_id=event.get("event_id"),
            )
            return
        self._clear_output()

    def _response_create(self, event: JsonObject) -> None:
        if self._active is not None:
            self._error(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress: "
                f"{self._active[0].response_id}. Wait until the response is finished "
                "before creating a new one.",
                param=None,
                event_id=event.get("event_id"),
            )
            return
        instructions = (event.get("response") or {}).get("instructions")
        self._start_response(self._take_request(instructions))

    def _response_cancel(self, event: JsonObject) -> None:
        wanted = event.get("response_id")
        active = self._active
        if active is None or (wanted and wanted != active[0].response_id):
            self._error(
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
                param=None,
                event_id=event.get("event_id"),
            )
            return
        self._cancel_active("client_cancelled")

    # Speech turns (server VAD).

    def _speech_started(self, event: SpeechStarted) -> None:
        self._speech_item = new_id("item")
        self._emit_simple(
            "input_audio_buffer.speech_started",
            audio_start_ms=event.audio_start_ms,
            item_id=self._speech_item,
        )
        if self._turn_flag("interrupt_response"):
            self._clear_output()
            self._cancel_active("turn_detected")

    def _speech_stopped(self, event: SpeechStopped) -> None:
        item_id = self._speech_item or new_id("item")
        self._speech_item = None
        self._emit_simple(
            "input_audio_buffer.speech_stopped", audio_end_ms=event.audio_end_ms, item_id=item_id
        )
        self._commit_audio(item_id, event.audio)
        if self._turn_flag("create_response") and self._active is None:
            self._start_response(self._take_request(None, Trigger.SPEECH))

    def _commit_audio(self, item_id: str, audio: Pcm) -> None:
        self._emit_simple(
            "input_audio_buffer.committed", previous_item_id=self._last_item, item_id=item_id
        )
        self._add_item(shapes.user_audio_item(item_id), self._last_item)
        self._pending.audio_item, self._pending.audio = item_id, audio
        self._transcripts[item_id] = self._spawn(self._transcribe(item_id, audio))

    async def _transcribe(self, item_id: str, audio: Pcm) -> str | None:
        transcript = await self._responder.transcribe(audio)
        config = self.session.get("audio", {}).get("input", {}).get("transcription")
        if transcript is not None and config:
            self._send_transcription(item_id, transcript, duration_s(audio))
        return transcript

    def _send_transcription(self, item_id: str, transcript: str, seconds: float) -> None:
        for word in shapes.split_words(transcript):
            self._emit_simple(
                "conversation.item.input_audio_transcription.delta",
                item_id=item_id,
                content_index=0,
                delta=word,
            )
        tokens_in, tokens_out = shapes.audio_tokens_in(seconds), shapes.text_tokens(transcript)
        usage = {
            "type": "tokens",
            "total_tokens": tokens_in + tokens_out,
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "input_token_details": {"text_tokens": 0, "audio_tokens": tokens_in},
        }
        self._emit_simple(
            "conversation.item.input_audio_transcription.completed",
            item_id=item_id,
            content_index=0,
            transcript=transcript,
            usage=usage,
        )

    # Responses.

    def _take_request(self, instructions: str | None, trigger: Trigger | None = None) -> _Request:
        pending, self._pending = self._pending, _Pending()
        if trigger is None:
            trigger = _trigger_of(pending)
        return _Request(trigger, pending, instructions)

    def _start_response(self, request: _Request) -> None:
        text_in = shapes.text_tokens(request.pending.text or "")
        audio = request.pending.audio
        audio_in = shapes.audio_tokens_in(duration_s(audio)) if audio is not None else 0
        run = ResponseRun(
            ResponseContext(
                emit=self._emit,
                output=self.output,
                session=self.session,
                conversation_id=self.conversation_id,
                speed=self._options.generation_speed,
                on_function_call=self._calls.__setitem__,
                on_drop=self._link.drop,
                input_tokens=(text_in, audio_in),
                encode_audio=self._options.wire_audio.encode if self._options.wire_audio else None,
            )
        )
        run.start()
        self._active = (run, self._spawn(self._generate(run, request)))

    async def _generate(self, run: ResponseRun, request: _Request) -> None:
        transcript = await self._await_transcript(request.pending.audio_item)
        reply = await self._responder.respond(self._response_request(request, transcript))
        await run.run(reply)
        self._active = None
        run.finish()

    async def _await_transcript(self, item_id: str | None) -> str | None:
        task = self._transcripts.pop(item_id, None) if item_id else None
        return await task if task is not None else None

    def _response_request(self, request: _Request, transcript: str | None) -> ResponseRequest:
        pending = request.pending
        tools = tuple(t.get("name", "") for t in self.session.get("tools") or [])
        return ResponseRequest(
            trigger=request.trigger,
            user_text=pending.text or transcript,
            user_audio=pending.audio,
            tool_outputs=tuple(pending.tool_outputs),
            tool_names=tools,
            instructions=request.instructions or self.session.get("instructions"),
        )

    def _cancel_active(self, reason: str, *, send: bool = True) -> None:
        if self._active is None:
            return
        run, task = self._active
        self._active = None
        task.cancel()
        if send:
            run.finish("cancelled", reason)

    def _clear_output(self) -> None:
        cut = self.output.clear()
        if cut is not None:
            self._emit_simple("output_audio_buffer.cleared", response_id=cut)

    # Conversation and emission.

    def _add_item(self, item: JsonObject, previous: Any) -> None:
        self._items[item["id"]] = item
        prev = previous if isinstance(previous, str) else self._last_item
        self._emit_simple("conversation.item.added", previous_item_id=prev, item=item)
        self._emit_simple("conversation.item.done", previous_item_id=prev, item=item)
        self._last_item = item["id"]

    def _turn_detection(self) -> JsonObject | None:
        detection = self.session.get("audio", {}).get("input", {}).get("turn_detection")
        return detection if isinstance(detection, dict) else None

    def _turn_flag(self, name: str) -> bool:
        detection = self._turn_detection()
        return detection is not None and detection.get(name, True) is not False

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        if self._tasks is None:
            raise RuntimeError("CallSession.run() is not running")
        return self._tasks.create_task(coro)

    def _error(
        self, code: str, message: str, *, param: str | None, event_id: object = None
    ) -> None:
        echo = event_id if isinstance(event_id, str) else None
        self._emit(shapes.error_event(code, message, param=param, event_id=echo))

    def _emit_simple(self, kind: str, **fields: object) -> None:
        self._emit({"type": kind, "event_id": new_id("event"), **fields})

    def _emit(self, event: JsonObject) -> None:
        problem = check_server_event(event)
        if problem is not None:
            raise ServerSchemaError(f"{event.get('type')}: {problem.message}")
        if event["type"] in _ITEM_EVENTS:  # responses' items too, for truncate and retrieve
            self._items[event["item"]["id"]] = event["item"]
        self._link.send_text(json.dumps(event, separators=(",", ":")))


@dataclass(frozen=True)
class _Request:
    trigger: Trigger
    pending: _Pending
    instructions: str | None


def _trigger_of(pending: _Pending) -> Trigger:
    if pending.tool_outputs:
        return Trigger.TOOL_OUTPUT
    if pending.text is not None:
        return Trigger.TEXT
    if pending.audio is not None:
        return Trigger.SPEECH
    return Trigger.RESPONSE_CREATE


__all__ = ["CallSession", "Link", "ServerSchemaError", "SessionOptions", "WireAudio"]
