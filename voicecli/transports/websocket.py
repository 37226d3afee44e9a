"""The Realtime WebSocket transport: the fallback when WebRTC cannot connect (UDP blocked).

The openai SDK's connection (``client.realtime.connect(model=…)``, realtime-protocol.md §1.5):
``wss://…/v1/realtime?model=…`` (Azure: ``…/openai/v1/realtime?model=<deployment>`` with an
``api-key`` header). It behaves as the Transport protocol says, like RtcTransport:

- Connect goes through named stages under one overall timeout (WebSocket handshake →
  session.created → session.updated), so a stall names its stage. A refused handshake keeps
  the service's JSON error (401 → AuthError with its message).
- Every outgoing event is validated against the SDK's types before it is queued; incoming events
  are parsed leniently (never raising). One writer task keeps their order, so an
  ``input_audio_buffer.commit`` always follows the audio appended before it.
- There is no SDP, so the session configuration goes as ``session.update`` right after
  ``session.created`` (standard keys; an ephemeral key already carries its session).
- Microphone: 20 ms 48 kHz frames from ``mic.recv()``, resampled to 24 kHz PCM16 and sent as
  ``input_audio_buffer.append`` every BATCH_MS. Reply audio: ``response.output_audio.delta``
  (24 kHz) → 48 kHz → ``on_audio(pcm, None)``: contiguous, with no timestamps. It arrives faster
  than real time; the playout buffer paces it.
- There are no ``output_audio_buffer.*`` events over a WebSocket, and the service cannot know
  what was played: on barge-in the caller truncates the item being heard with
  :meth:`WebSocketTransport.truncate_unheard` (or :meth:`truncate`), never past what was
  received. The AudioLedger keeps what was received of each item.
- Liveness: WebSocket keepalive pings; any close becomes one Disconnected with its cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import numpy as np
import openai
from aiortc.mediastreams import MediaStreamError
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.websocket_connection_options import WebSocketConnectionOptions
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from voicecli.audio.dsp import Resampler, to_mono
from voicecli.audio.formats import RATE_HZ, Pcm
from voicecli.auth.credentials import (
    CredentialSource,
    api_client,
    api_endpoint,
    request_headers,
)
from voicecli.config import Settings
from voicecli.errors import AuthError, NetworkError, ServiceError, VoiceCliError
from voicecli.realtime.events import (
    JsonObject,
    ServerEvent,
    UnknownServerEvent,
    client_event,
    encode_client_event,
    event_type,
    parse_server_event,
    session_update,
)
from voicecli.realtime.transport import (
    Disconnected,
    LinkState,
    RemoteAudio,
    TransportEvent,
    until_disconnected,
)
from voicecli.redact import redact
from voicecli.transports import pcm16
from voicecli.transports.pcm16 import WIRE_RATE_HZ

log = logging.getLogger(__name__)

BATCH_MS = 40  # mic audio per append: two 20 ms frames, half the messages, +20 ms at most
AudioCallback = RemoteAudio  # mono 48 kHz, pts None: WebSocket audio has no timestamps


class AudioSource(Protocol):
    """The microphone: 20 ms s16 mono 48 kHz av.AudioFrames, paced in real time."""

    async def recv(self) -> Any: ...  # av.AudioFrame (PyAV is untyped)


class Stage(StrEnum):
    HANDSHAKE = "WebSocket handshake"
    SESSION = "session.created"
    CONFIGURED = "session.updated"


_HINTS = {
    Stage.HANDSHAKE: "the endpoint did not accept the WebSocket; check the base URL, and whether "
    "a proxy blocks WebSockets",
    Stage.SESSION: "the service connected but sent no session.created; try again",
    Stage.CONFIGURED: "the service did not confirm the session configuration; try again",
}

_STATUS_HINTS = {
    "insufficient_quota": "check the plan and billing of the API key's organisation",
    "rate_limit_exceeded": "wait a moment and try again",
    "model_not_found": "pick a model the key can use: --model, or session.model in the config",
    "404": "is the base URL a Realtime API endpoint?",
    "500": "the service had an error; try again",
    "503": "the service is overloaded; try again",
}


@dataclass(frozen=True)
class WsOptions:
    connect_timeout_s: float = 10.0
    liveness_timeout_s: float = 5.0  # a silent link is declared dead within about this long
    batch_ms: int = BATCH_MS


@dataclass(frozen=True)
class WsEndpoint:
    """Where to connect: the SDK client (base URL, key), the model and per-request headers."""

    client: openai.AsyncOpenAI
    model: str  # Azure: the deployment name
    headers: Mapping[str, str | openai.Omit] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return urlsplit(str(self.client.base_url)).netloc


# Audio bookkeeping (pure).


@dataclass
class _ItemAudio:
    item_id: str
    start: int  # 24 kHz samples received before this item's first
    samples: int = 0


class AudioLedger:
    """Which assistant item each received sample belongs to, in arrival order (24 kHz)."""

    def __init__(self, keep: int = 32) -> None:
        self._items: deque[_ItemAudio] = deque(maxlen=keep)
        self.total = 0  # samples received since connect

    def received(self, item_id: str, samples: int) -> None:
        if not self._items or self._items[-1].item_id != item_id:
            self._items.append(_ItemAudio(item_id, self.total))
        self._items[-1].samples += samples
        self.total += samples

    def received_ms(self, item_id: str) -> int | None:
        """Milliseconds of ``item_id``'s audio received (floored, as the service counts)."""
        for item in self._items:
            if item.item_id == item_id:
                return item.samples * 1000 // WIRE_RATE_HZ
        return None

    def heard(self, unplayed_samples: int, rate: int = RATE_HZ) -> tuple[str, int] | None:
        """The item being heard and the ms heard of it, when the last ``unplayed_samples``
        (at ``rate``) of what was received were never played; None when all was heard."""
        unplayed = math.ceil(unplayed_samples * WIRE_RATE_HZ / rate)
        if unplayed <= 0:
            return None
        position = max(0, self.total - unplayed)
        for item in reversed(self._items):
            if item.start <= position:
                return item.item_id, (position - item.start) * 1000 // WIRE_RATE_HZ
        return None


class MicBatcher:
    """48 kHz mic PCM → base64 24 kHz payloads of exactly ``batch_ms`` each."""

    def __init__(self, batch_ms: int = BATCH_MS, rate: int = RATE_HZ) -> None:
        self._resampler = Resampler(rate, WIRE_RATE_HZ)
        self._size = WIRE_RATE_HZ * batch_ms // 1000
        self._pending = np.zeros(0, dtype=np.int16)

    def push(self, pcm: Pcm) -> list[str]:
        data = np.concatenate([self._pending, self._resampler.push(pcm)])
        whole = data.size - data.size % self._size
        self._pending = data[whole:]
        return [pcm16.encode(data[i : i + self._size]) for i in range(0, whole, self._size)]


def frame_pcm(frame: Any) -> Pcm:
    """An s16 av.AudioFrame (packed, any channel count) as mono int16."""
    return to_mono(frame.to_ndarray(), len(frame.layout.channels))


# The transport.


class WebSocketTransport:
    """A Transport over the Realtime WebSocket: mic appends out, reply audio to ``on_audio``."""

    kind = "websocket"  # what the dashboard shows
    # No output_audio_buffer.* events: the service cannot know what was played, so the client
    # decides when speech ended (its playout drained) and what to truncate on barge-in.
    service_tracks_playback = False

    def __init__(
        self,
        endpoint: WsEndpoint,
        options: WsOptions,
        mic: AudioSource | None = None,
        on_audio: AudioCallback | None = None,
    ) -> None:
        self._endpoint = endpoint
        self.options = options
        self._mic = mic
        self._on_audio = on_audio
        self._queue: asyncio.Queue[TransportEvent] = asyncio.Queue()
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._conn: AsyncRealtimeConnection | None = None
        self._speaker = Resampler(WIRE_RATE_HZ, RATE_HZ)
        self.ledger = AudioLedger()
        self.call_id: str | None = None  # WebSocket sessions have no call id
        self.session_id: str | None = None
        self.stage = Stage.HANDSHAKE
        self.stage_times: dict[Stage, float] = {}
        self.connect_s: float | None = None  # connect() start → ready (the fallback's cost)
        self._started = time.monotonic()
        self._closing = False
        self._disconnected = False

    @property
    def host(self) -> str:
        return self._endpoint.host

    # Connect.

    async def connect(self, session: JsonObject | None) -> None:
        """Handshake → session.created → (session.update → session.updated), or an error."""
        self._started = time.monotonic()
        try:
            async with asyncio.timeout(self.options.connect_timeout_s):
                await self._connect(session)
        except TimeoutError:
            raise NetworkError(
                f"could not connect the WebSocket within {self.options.connect_timeout_s:g} s: "
                f"stalled at {self.stage}",
                hint=_HINTS[self.stage],
            ) from None
        self.connect_s = time.monotonic() - self._started

    async def _connect(self, session: JsonObject | None) -> None:
        self._reach(Stage.HANDSHAKE)
        self._conn = await self._open()
        self._reach(Stage.SESSION)
        await self._read_until("session.created", None)
        if session is not None:
            update = session_update(wire_session(session))
            await self._conn.send_raw(encode_client_event(update))
            self._reach(Stage.CONFIGURED)
            await self._read_until("session.updated", update["event_id"])

    async def _open(self) -> AsyncRealtimeConnection:
        # Keepalive pings are the liveness check: ping, wait for the pong, then for the close
        # handshake, a third of the liveness timeout each, so a dead link is reported in time.
        third = self.options.liveness_timeout_s / 3
        keepalive = {"ping_interval": third, "ping_timeout": third, "close_timeout": third}
        options = cast(WebSocketConnectionOptions, keepalive)
        manager = self._endpoint.client.realtime.connect(
            model=self._endpoint.model,
            extra_headers=cast(Any, dict(self._endpoint.headers)),
            websocket_connection_options=options,
        )
        try:
            return await manager.enter()
        except InvalidStatus as exc:
            raise handshake_error(exc, self.host) from None
        except (OSError, InvalidHandshake, InvalidURI) as exc:
            reason = redact(str(exc)) or type(exc).__name__
            raise NetworkError(f"cannot open a WebSocket to {self.host}: {reason}") from None

    async def _read_until(self, kind: str, event_id: str | None) -> None:
        """Read events (queueing them) until ``kind``; an error about our event fails."""
        assert self._conn is not None
        while True:
            try:
                raw = await self._conn.recv_bytes()
            except ConnectionClosed as exc:
                raise self._closed_while_connecting(exc) from None
            event = self._on_message(raw)
            kind_now = event_type(event)
            if kind_now == "session.created":
                self.session_id = _as_dict(event).get("session", {}).get("id")
            if kind_now == "error":
                self._fail_on_error(_as_dict(event).get("error") or {}, event_id)
            if kind_now == kind:
                return

    def _fail_on_error(self, error: JsonObject, event_id: str | None) -> None:
        if error.get("event_id") not in (None, event_id):
            return  # about another event: the session reports it
        message = redact(str(error.get("message") or "an error event"))
        code = error.get("code") if isinstance(error.get("code"), str) else None
        raise ServiceError(
            f"{self.host} refused the session during {self.stage}: {message}", code=code
        )

    def _closed_while_connecting(self, exc: ConnectionClosed) -> VoiceCliError:
        if exc.rcvd is not None and exc.rcvd.reason:
            return ServiceError(
                f"{self.host} closed the WebSocket during {self.stage}: "
                f"{redact(exc.rcvd.reason)} (code {exc.rcvd.code})"
            )
        return NetworkError(f"the WebSocket to {self.host} closed during {self.stage}")

    def _reach(self, stage: Stage) -> None:
        self.stage = stage
        at = time.monotonic() - self._started
        self.stage_times[stage] = at
        self._queue.put_nowait(LinkState(stage.value, at))

    # The link while it runs.

    def send(self, event: JsonObject) -> None:
        """Validate and queue one event (InvalidEventError: nothing is sent)."""
        text = encode_client_event(event)
        if self._disconnected:
            log.debug("%s not sent: the WebSocket is closed", event.get("type"))
            return
        self._outbox.put_nowait(text)

    def events(self) -> AsyncIterator[TransportEvent]:
        return until_disconnected(self._queue)

    async def run(self) -> None:
        """Read, write and pump the mic until the link closes; owns its tasks."""
        async with asyncio.TaskGroup() as tasks:
            helpers = [tasks.create_task(self._write())]
            if self._mic is not None:
                helpers.append(tasks.create_task(self._pump_mic(self._mic)))
            await self._read()
            for task in helpers:
                task.cancel()

    async def close(self) -> None:
        """Close the socket and the SDK client; safe to call more than once."""
        if self._closing:
            return
        self._closing = True
        self._disconnect("closed by voicecli")
        try:
            if self._conn is not None:
                await self._conn.close()
        finally:
            await self._endpoint.client.close()

    # Barge-in: the client decides what was heard (§6).

    def truncate(self, item_id: str, audio_end_ms: int) -> int:
        """Send conversation.item.truncate, clamped to the audio received; the ms sent."""
        received = self.ledger.received_ms(item_id)
        end = max(0, audio_end_ms if received is None else min(audio_end_ms, received))
        self.send(
            client_event(
                "conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=end
            )
        )
        return end

    def truncate_unheard(self, unplayed_samples: int) -> tuple[str, int] | None:
        """After a playout flush that dropped ``unplayed_samples`` (48 kHz) never played:
        truncate the item being heard at what was heard. Returns (item_id, ms) or None."""
        heard = self.ledger.heard(unplayed_samples)
        if heard is None:
            return None
        item_id, ms = heard
        return item_id, self.truncate(item_id, ms)

    # Tasks.

    async def _read(self) -> None:
        assert self._conn is not None
        while True:
            try:
                raw = await self._conn.recv_bytes()
            except ConnectionClosed as exc:
                self._disconnect(self._close_cause(exc))
                return
            self._on_message(raw)

    async def _write(self) -> None:
        assert self._conn is not None
        while True:
            text = await self._outbox.get()
            try:
                await self._conn.send_raw(text)
            except ConnectionClosed:
                return  # the reader reports why

    async def _pump_mic(self, mic: AudioSource) -> None:
        batcher = MicBatcher(self.options.batch_ms)
        with contextlib.suppress(MediaStreamError):  # the track was stopped
            while True:
                for payload in batcher.push(frame_pcm(await mic.recv())):
                    self.send({"type": "input_audio_buffer.append", "audio": payload})

    # Incoming.

    def _on_message(self, raw: bytes) -> ServerEvent:
        event = parse_server_event(raw)
        kind = event_type(event)
        if kind == "response.output_audio.delta":
            self._play(_as_dict(event))
        elif kind == "response.output_audio.done":
            self._end_of_audio()
        self._queue.put_nowait(event)
        return event

    def _play(self, data: JsonObject) -> None:
        try:
            pcm = pcm16.decode(str(data.get("delta") or ""))
        except ValueError as exc:
            log.warning("undecodable audio delta dropped: %s", exc)
            return
        self.ledger.received(str(data.get("item_id") or ""), pcm.size)
        self._deliver(self._speaker.push(pcm))

    def _end_of_audio(self) -> None:
        """The resampler holds back a few samples: hand them over at the end of each reply."""
        self._deliver(self._speaker.flush())
        self._speaker = Resampler(WIRE_RATE_HZ, RATE_HZ)

    def _deliver(self, pcm: Pcm) -> None:
        if pcm.size and self._on_audio is not None:
            self._on_audio(pcm, None)

    def _disconnect(self, cause: str) -> None:
        if self._disconnected:
            return
        self._disconnected = True
        self._queue.put_nowait(Disconnected(cause))

    def _close_cause(self, exc: ConnectionClosed) -> str:
        if exc.rcvd is not None:
            reason = f": {redact(exc.rcvd.reason)}" if exc.rcvd.reason else ""
            return f"{self.host} closed the WebSocket (code {exc.rcvd.code}{reason})"
        if exc.sent is not None and exc.sent.reason == "keepalive ping timeout":
            return f"no answer from {self.host} for {self.options.liveness_timeout_s:g} s"
        return f"the WebSocket to {self.host} was cut"


def handshake_error(exc: InvalidStatus, host: str) -> VoiceCliError:
    """A refused upgrade → our error, keeping the service's JSON message and code (redacted)."""
    response = exc.response
    status = response.status_code
    message, code = _error_body(response.body)
    message = redact(message or response.reason_phrase)
    if status in (401, 403):
        return AuthError(f"{host} refused the key ({status}): {message}")
    hint = _STATUS_HINTS.get(code or "") or _STATUS_HINTS.get(str(status))
    return ServiceError(f"{host} answered {status}: {message}", code=code, status=status, hint=hint)


def _error_body(body: bytes | None) -> tuple[str | None, str | None]:
    try:
        data = json.loads(body or b"")
    except ValueError:
        return None, None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None, None
    message, code = error.get("message"), error.get("code")
    return (
        message if isinstance(message, str) else None,
        code if isinstance(code, str) else None,
    )


def wire_session(session: JsonObject) -> JsonObject:
    """The session for session.update over a WebSocket: no model (the URL names it, and the
    SDK README's own session.update sends none); both audio formats stated (base64 PCM16
    24 kHz is what this transport sends and plays, §7), whatever the default."""
    audio = session.get("audio") or {}
    stated = {
        side: {**(audio.get(side) or {}), "format": dict(pcm16.WIRE_FORMAT)}
        for side in ("input", "output")
    }
    return {**{k: v for k, v in session.items() if k != "model"}, "audio": {**audio, **stated}}


def _as_dict(event: ServerEvent) -> JsonObject:
    if isinstance(event, UnknownServerEvent):
        return event.raw
    dumped: JsonObject = event.model_dump(mode="json")
    return dumped


# Composition (mirrors app.open_transport).


def ws_options(settings: Settings) -> WsOptions:
    return WsOptions(
        connect_timeout_s=settings.network.connect_timeout_s,
        liveness_timeout_s=settings.network.liveness_timeout_s,
    )


async def open_websocket_transport(
    settings: Settings,
    source: CredentialSource,
    session_cfg: JsonObject,
    mic: AudioSource | None,
    on_audio: AudioCallback | None = None,
) -> WebSocketTransport:
    """Credentials → a connected WebSocket transport, its session created and configured.

    ``source`` is the caller's, kept across attempts: a cached ephemeral key is reused, and a
    refused one is dropped from that same cache."""
    credentials = await source.get(session_cfg)
    target = api_endpoint(settings)
    ephemeral = credentials.kind != "standard"
    endpoint = WsEndpoint(
        api_client(target, credentials.value),
        str(session_cfg.get("model") or settings.session.model),
        {} if ephemeral else request_headers(target),
    )
    transport = WebSocketTransport(endpoint, ws_options(settings), mic, on_audio)
    try:
        # An ephemeral key's session was set when it was minted (or by the token URL's backend,
        # whose choice must stand), as with WebRTC.
        await transport.connect(None if ephemeral else session_cfg)
    except AuthError:
        source.invalidate()
        await transport.close()
        raise
    except BaseException:
        await transport.close()
        raise
    return transport
