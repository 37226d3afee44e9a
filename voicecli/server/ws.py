"""`voicecli serve`'s Realtime WebSocket: ``GET /v1/realtime?model=…`` (and ``/openai/v1/…``).

The same CallSession as a WebRTC call, over one WebSocket (realtime-protocol.md §1.5): one JSON
event per text frame both ways, ``session.created`` as soon as the socket opens. Microphone audio
arrives in ``input_audio_buffer.append`` (base64 PCM16 24 kHz) and feeds the server VAD; the
reply's audio leaves as ``response.output_audio.delta`` events as fast as it is generated, like
the real service (the client paces playout), and the WebRTC-only ``output_audio_buffer.*``
events are never sent. Auth is checked before the upgrade (http.py), so a bad key gets the
service's JSON 401.

Faults: --drop-after, --max-session (error, then close 1001 with its message, §7), --drop-on,
--drop-silently (stop sending and stop answering pings, so only a keepalive notices) and
--strict-tool-output (closes the socket) apply as they do to WebRTC calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from voicecli.server.peer import Call, CallFaults
from voicecli.server.responders import Responder
from voicecli.server.session import CallSession, SessionOptions
from voicecli.server.shapes import JsonObject
from voicecli.transports.pcm16 import ServerWire

if TYPE_CHECKING:
    from voicecli.server.http import ServerConfig

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 << 20  # one append may carry up to 15 MiB (realtime-protocol.md §3)
FLUSH_S = 1.0  # on close, events already queued (an expiry error) get this long to go out
CLOSE_WAIT_S = 2.0  # how long close waits for the client's close frame

CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_ERROR = 1000, 1001, 1008, 1011


class SocketCall:
    """One Realtime WebSocket session; the Link of its CallSession."""

    def __init__(
        self,
        call_id: str,
        responder: Responder,
        session: JsonObject,
        options: SessionOptions,
        faults: CallFaults,
    ) -> None:
        self.call_id = call_id
        self.faults = faults
        self.session = CallSession(
            self, responder, session, replace(options, wire_audio=ServerWire())
        )
        self.ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, timeout=CLOSE_WAIT_S)
        self.closed = asyncio.Event()
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._close: tuple[int, str] | None = None
        self._silent = False
        self._reader: asyncio.Task[None] | None = None

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        """Upgrade, then run the session until either side closes."""
        await self.ws.prepare(request)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.session.run())
                self._reader = tasks.create_task(self._receive())
                timers = tasks.create_task(self._timers())
                writer = tasks.create_task(self._send())
                self.session.on_open()
                await self.closed.wait()
                self.session.close()
                self._reader.cancel()
                timers.cancel()
                await self._flush(writer)
                code, reason = self._close or (CLOSE_NORMAL, "")
                await self.ws.close(code=code, message=reason.encode())
        finally:
            self.session.close()
        return self.ws

    async def close(self) -> None:
        self._end(CLOSE_NORMAL, "")

    # Link (what the session calls).

    def send_text(self, text: str) -> None:
        if self._silent or self.closed.is_set():
            return
        self._outbox.put_nowait(text)

    def close_events(self) -> None:
        """Strict tool-output fault: over a WebSocket the event channel is the whole call."""
        self._end(CLOSE_POLICY, "invalid function_call_output")

    def drop(self) -> None:
        if self.faults.drop_silently:
            self._silent = True  # nothing more goes out, and pings go unanswered
            if self._reader is not None:
                self._reader.cancel()
        else:
            self._end(CLOSE_ERROR, "call dropped by voicecli serve (fault)")

    def _expire(self) -> None:
        # The session sends its error, then drops the link: that close keeps this code.
        self._close = (CLOSE_GOING_AWAY, "Your session hit the maximum duration of 60 minutes.")
        self.session.expire()

    def _end(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
        self.closed.set()

    # Tasks.

    async def _receive(self) -> None:
        """Client events until the client closes; aiohttp answers pings while this reads."""
        async for message in self.ws:
            if message.type is WSMsgType.TEXT:
                self.session.on_message(message.data)
            elif message.type is WSMsgType.BINARY:
                self.session.on_message(message.data.decode("utf-8", "replace"))
        self.closed.set()

    async def _send(self) -> None:
        while True:
            text = await self._outbox.get()
            try:
                await self.ws.send_str(text)
            except ConnectionError:  # the client is gone
                self.closed.set()
                return
            finally:
                self._outbox.task_done()

    async def _flush(self, writer: asyncio.Task[None]) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FLUSH_S):
                await self._outbox.join()
        writer.cancel()

    async def _timers(self) -> None:
        waits: list[tuple[float, Callable[[], None]]] = []
        if self.faults.drop_after_s is not None:
            waits.append((self.faults.drop_after_s, self.drop))
        if self.faults.max_session_s is not None:
            waits.append((self.faults.max_session_s, self._expire))
        loop = asyncio.get_running_loop()
        start = loop.time()
        for at, action in sorted(waits, key=lambda w: w[0]):
            await asyncio.sleep(max(0.0, start + at - loop.time()))
            action()


async def serve_socket(
    request: web.Request,
    config: ServerConfig,
    session: JsonObject,
    calls: dict[str, Call | SocketCall],
) -> web.StreamResponse:
    """Handle an authenticated ``GET …/realtime``: refuse what we cannot serve, else upgrade."""
    refused = _refusal(request)
    if refused is not None:
        return refused
    model = request.query.get("model")
    if model:  # Azure names its deployment here (§1.7)
        session = {**session, "model": model}
    faults = config.faults
    options = SessionOptions(
        generation_speed=config.generation_speed,
        strict_tool_output=faults.strict_tool_output,
        drop_on=faults.drop_on,
    )
    call = SocketCall(session["id"], config.responder(), session, options, faults.for_call())
    calls[call.call_id] = call
    try:
        return await call.serve(request)
    finally:
        calls.pop(call.call_id, None)


def _refusal(request: web.Request) -> web.Response | None:
    if "call_id" in request.query:
        return _error(
            400,
            "voicecli serve does not support attaching to a call (call_id); use ?model=.",
            code="unsupported_parameter",
            param="call_id",
        )
    if not web.WebSocketResponse().can_prepare(request).ok:
        return _error(
            400,
            "This endpoint expects a WebSocket upgrade (wss://…/v1/realtime?model=…).",
            code="websocket_upgrade_required",
            param=None,
        )
    return None


def _error(status: int, message: str, *, code: str, param: str | None) -> web.Response:
    """The standard OpenAI error body (as http.error_response; not imported: http imports us)."""
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return web.json_response({"error": error}, status=status)
