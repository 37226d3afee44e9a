"""One response of "the model": reply parts → the GA event sequence of realtime-protocol.md §4.6.

The response "generates" faster than real time (``speed``× the audio's duration), as the real
service does: audio is queued for playout progressively, transcript deltas go out as their audio
is generated, and ``response.done`` usually comes before the audio has finished playing;
``output_audio_buffer.stopped`` follows when the playout drains (session.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from voicecli.server import shapes
from voicecli.server.playback import OutputBuffer
from voicecli.server.responders import (
    RATE_HZ,
    DropCall,
    ErrorReply,
    FunctionCall,
    Pcm,
    Reply,
    Speech,
    duration_s,
)
from voicecli.server.shapes import JsonObject, new_id

CHUNK_MS = 100  # generation granularity: audio is queued and deltas sent per 100 ms of speech

Emit = Callable[[JsonObject], None]


@dataclass
class ResponseContext:
    """What a response needs from its call; owned by the session."""

    emit: Emit
    output: OutputBuffer
    session: JsonObject
    conversation_id: str
    speed: float  # generation speed as a multiple of real time
    on_function_call: Callable[[str, str], None]  # (call_id, name) for later output checks
    on_drop: Callable[[], None]
    input_tokens: tuple[int, int] = (0, 0)  # (text, audio) tokens of the turn that asked
    # WebSocket: audio goes out as response.output_audio.delta events with this payload (base64
    # PCM16 24 kHz) and no output_audio_buffer.* events exist. None: RTP (WebRTC).
    encode_audio: Callable[[Pcm], str] | None = None


@dataclass
class ResponseRun:
    """The state of one response while it generates."""

    ctx: ResponseContext
    response_id: str = field(default_factory=lambda: new_id("resp"))
    output: list[JsonObject] = field(default_factory=list)
    audio_s: float = 0.0
    text_out: str = ""
    audio_started: bool = False
    failure: ErrorReply | None = None

    @property
    def audio_mode(self) -> bool:
        return "audio" in self.ctx.session.get("output_modalities", ["audio"])

    def start(self) -> None:
        self._emit("response.created", response=self._response())
        self._emit(
            "rate_limits.updated",
            rate_limits=[
                {"name": "tokens", "limit": 40000, "remaining": 39000, "reset_seconds": 1.5}
            ],
        )

    async def run(self, reply: Reply) -> None:
        for part in reply.parts:
            if isinstance(part, Speech):
                await self._speak(part)
            elif isinstance(part, FunctionCall):
                self._call(part)
            elif isinstance(part, ErrorReply):
                self._fail(part)
                return
            elif isinstance(part, DropCall):
                self.ctx.on_drop()
                return

    def finish(self, status: str = "completed", reason: str | None = None) -> None:
        """Send response.done; the only place a response ends."""
        details: JsonObject | None = None
        if status == "cancelled":
            details = {"type": "cancelled", "reason": reason}
        elif self.failure is not None:
            status = "failed"
            details = {
                "type": "failed",
                "error": {
                    "type": self.failure.type,
                    "code": self.failure.code,
                    "message": self.failure.message,
                },
            }
        self._emit("response.done", response=self._response(status, details))
        if self.audio_started:  # output_audio_buffer.stopped only follows audio that started
            self.ctx.output.finish(self.response_id)

    # Parts.

    async def _speak(self, speech: Speech) -> None:
        item_id, index = new_id("item"), len(self.output)
        kind = "audio" if self.audio_mode else "text"
        self._item_added(shapes.assistant_item(item_id, "in_progress", []), index)
        where = {
            "response_id": self.response_id,
            "item_id": item_id,
            "output_index": index,
            "content_index": 0,
        }
        self._emit("response.content_part.added", part=_part(kind, ""), **where)
        self.output.append(shapes.assistant_item(item_id, "in_progress", []))
        spoken = await self._stream(speech, item_id, where)
        self._close_speech(kind, spoken, item_id, index, where)

    async def _stream(self, speech: Speech, item_id: str, where: JsonObject) -> str:
        words = shapes.split_words(speech.transcript)
        chunks = _chunks(speech.audio) if self.audio_mode else [speech.audio]
        delta_type = (
            "response.output_audio_transcript.delta"
            if self.audio_mode
            else "response.output_text.delta"
        )
        sent = 0
        for number, chunk in enumerate(chunks, start=1):
            self._queue_audio(item_id, chunk, where)
            upto = len(words) * number // len(chunks)
            for word in words[sent:upto]:
                self._emit(delta_type, delta=word, **where)
            sent = upto
            self.audio_s += duration_s(chunk)
            await asyncio.sleep(duration_s(chunk) / self.ctx.speed)
        return speech.transcript

    def _queue_audio(self, item_id: str, chunk: Pcm, where: JsonObject) -> None:
        if not self.audio_mode:
            return
        if self.ctx.encode_audio is not None:  # as fast as generated, like the real service
            self._emit("response.output_audio.delta", delta=self.ctx.encode_audio(chunk), **where)
            self.ctx.output.record_sent(item_id, chunk.size)
            return
        if not self.audio_started:
            self.audio_started = True
            self._emit("output_audio_buffer.started", response_id=self.response_id)
        self.ctx.output.enqueue(self.response_id, item_id, chunk)

    def _close_speech(
        self, kind: str, text: str, item_id: str, index: int, where: JsonObject
    ) -> None:
        self.text_out += text
        if kind == "audio":
            if self.ctx.encode_audio is not None:  # WS only (§4.6 step 15)
                self._emit("response.output_audio.done", **where)
            self._emit("response.output_audio_transcript.done", transcript=text, **where)
            content = {"type": "output_audio", "transcript": text}
        else:
            self._emit("response.output_text.done", text=text, **where)
            content = {"type": "output_text", "text": text}
        self._emit("response.content_part.done", part=_part(kind, text), **where)
        item = shapes.assistant_item(item_id, "completed", [content])
        self.output[index] = item
        self._emit(
            "response.output_item.done", response_id=self.response_id, output_index=index, item=item
        )
        self._emit("conversation.item.done", item=item)

    def _call(self, call: FunctionCall) -> None:
        item_id, call_id, index = new_id("item"), new_id("call"), len(self.output)
        self._item_added(
            shapes.function_call_item(item_id, call_id, call.name, "", "in_progress"), index
        )
        where = {
            "response_id": self.response_id,
            "item_id": item_id,
            "output_index": index,
            "call_id": call_id,
        }
        for piece in _halves(call.arguments):
            self._emit("response.function_call_arguments.delta", delta=piece, **where)
        self._emit(
            "response.function_call_arguments.done",
            name=call.name,
            arguments=call.arguments,
            **where,
        )
        item = shapes.function_call_item(item_id, call_id, call.name, call.arguments, "completed")
        self.output.append(item)
        self.text_out += call.arguments
        self._emit(
            "response.output_item.done", response_id=self.response_id, output_index=index, item=item
        )
        self._emit("conversation.item.done", item=item)
        self.ctx.on_function_call(call_id, call.name)

    def _fail(self, error: ErrorReply) -> None:
        self.failure = error
        self.ctx.emit(shapes.error_event(error.code, error.message, kind=error.type))

    # Helpers.

    def _item_added(self, item: JsonObject, index: int) -> None:
        self._emit(
            "response.output_item.added",
            response_id=self.response_id,
            output_index=index,
            item=item,
        )
        self._emit("conversation.item.added", item=item)

    def _response(
        self, status: str = "in_progress", details: JsonObject | None = None
    ) -> JsonObject:
        ids = (self.response_id, self.ctx.conversation_id, self.ctx.session)
        if status == "in_progress":
            return shapes.response_object(*ids)
        return shapes.response_object(
            *ids, status=status, output=self.output, usage=self._usage(), status_details=details
        )

    def _usage(self) -> JsonObject:
        text_in, audio_in = self.ctx.input_tokens
        return shapes.usage(
            text_in=text_in,
            audio_in=audio_in,
            text_out=shapes.text_tokens(self.text_out),
            audio_out=shapes.audio_tokens_out(self.audio_s) if self.audio_mode else 0,
        )

    def _emit(self, kind: str, **fields: object) -> None:
        self.ctx.emit({"type": kind, "event_id": new_id("event"), **fields})


def _part(kind: str, text: str) -> JsonObject:
    # The content part type is "audio"/"text", not output_audio (§4.6 step 11, SDK Literal).
    return (
        {"type": "audio", "transcript": text} if kind == "audio" else {"type": "text", "text": text}
    )


def _chunks(audio: Pcm) -> list[Pcm]:
    step = RATE_HZ * CHUNK_MS // 1000
    return [audio[i : i + step] for i in range(0, max(audio.size, 1), step)] or [audio]


def _halves(arguments: str) -> list[str]:
    middle = len(arguments) // 2
    return [p for p in (arguments[:middle], arguments[middle:]) if p]
