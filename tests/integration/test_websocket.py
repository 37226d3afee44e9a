"""The Realtime WebSocket transport against `voicecli serve`'s WebSocket endpoint, end to end."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from tests.integration.conftest import get_time_script, scripted, serve
from voicecli.app import open_transport, session_config
from voicecli.audio.dsp import normalized_xcorr_peak, silence, tone
from voicecli.audio.formats import RATE_HZ, Pcm
from voicecli.auth.credentials import credential_source
from voicecli.config import Settings, load_settings
from voicecli.errors import AuthError, NetworkError
from voicecli.realtime.events import ServerEvent, UnknownServerEvent, event_type, user_text
from voicecli.realtime.pricing import PriceTable, UsageTotals
from voicecli.realtime.session import Session
from voicecli.realtime.tools import registry_from_settings
from voicecli.realtime.transport import Disconnected, LinkState, NetworkStats, TransportEvent
from voicecli.rtc.tracks import PacedAudioTrack, PcmQueue
from voicecli.server.app import RunningServer
from voicecli.server.echo import EchoResponder, tone_ms_for_text
from voicecli.server.faults import ServeFaults
from voicecli.server.http import Endpoints, ServerConfig
from voicecli.server.keys import KeyStore
from voicecli.server.ws import SocketCall
from voicecli.transports.websocket import WebSocketTransport, open_websocket_transport

pytestmark = pytest.mark.integration

KEY = "sk-test-WsMiddle0123456789wxyz"
BAD_KEY = "sk-test-BadMiddlePart13579abcd"
JsonObject = dict[str, Any]


def settings_for(base_url: str, **flags: Any) -> Settings:
    return load_settings(None, {}, {"api.base_url": base_url, "api.api_key": KEY, **flags})


def config_of(settings: Settings, *, manual_turns: bool = True) -> JsonObject:
    tools = registry_from_settings(settings)
    return session_config(settings, tools, manual_turns=manual_turns, text_only=False)


@dataclass
class Heard:
    """Everything the transport reported, and the reply audio it handed on."""

    events: list[TransportEvent] = field(default_factory=list)
    audio: list[Pcm] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_audio(self, pcm: Pcm, pts: int | None) -> None:
        assert pts is None, "WebSocket audio is contiguous: no timestamps"
        self.audio.append(pcm)

    async def consume(self, transport: WebSocketTransport) -> None:
        async for event in transport.events():
            self.events.append(event)
            self.changed.set()

    def server_events(self) -> list[ServerEvent]:
        return [
            e for e in self.events if not isinstance(e, LinkState | NetworkStats | Disconnected)
        ]

    def types(self) -> list[str]:
        return [event_type(e) for e in self.server_events()]

    def raw(self, kind: str) -> list[JsonObject]:
        return [_as_dict(e) for e in self.server_events() if event_type(e) == kind]

    def reply_audio(self) -> Pcm:
        return np.concatenate(self.audio) if self.audio else np.zeros(0, dtype=np.int16)

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    async def wait_type(self, kind: str, count: int = 1, timeout_s: float = 10.0) -> JsonObject:
        await self.wait_for(lambda: len(self.raw(kind)) >= count, timeout_s)
        return self.raw(kind)[count - 1]

    def disconnected(self) -> Disconnected | None:
        return next((e for e in self.events if isinstance(e, Disconnected)), None)


def _as_dict(event: ServerEvent) -> JsonObject:
    if isinstance(event, UnknownServerEvent):
        return event.raw
    dumped: JsonObject = event.model_dump(mode="json")
    return dumped


@contextlib.asynccontextmanager
async def websocket(
    settings: Settings, config: JsonObject, mic: PcmQueue | None = None
) -> AsyncIterator[tuple[WebSocketTransport, Heard]]:
    """A connected, running WebSocket transport and what it reports; closed on exit."""
    heard = Heard()
    track = PacedAudioTrack(mic.pull) if mic is not None else None
    transport = await open_websocket_transport(
        settings, credential_source(settings, KEY), config, track, heard.on_audio
    )
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(transport.run())
            tasks.create_task(heard.consume(transport))
            yield transport, heard
            await transport.close()
    finally:
        await transport.close()
        if track is not None:
            track.stop()
    unknown = [e for e in heard.events if isinstance(e, UnknownServerEvent)]
    assert unknown == [], f"events outside the SDK's types: {unknown}"


def socket_calls(server: RunningServer) -> list[SocketCall]:
    return [c for c in server.endpoints.calls.values() if isinstance(c, SocketCall)]


def chirp(ms: int, start_hz: float = 200.0, end_hz: float = 2000.0) -> Pcm:
    """A sweep: one best alignment, so a high correlation proves it is the same audio."""
    t = np.arange(48 * ms) / RATE_HZ
    phase = 2 * np.pi * (start_hz * t + (end_hz - start_hz) * t**2 / (2 * t[-1]))
    return (np.sin(phase) * 0.25 * 32767).astype(np.int16)


# ---- turns ------------------------------------------------------------------------------------


async def test_a_text_turn_brings_its_transcript_and_its_audio() -> None:
    async with serve() as server:
        settings = settings_for(server.base_url)
        async with websocket(settings, config_of(settings)) as (transport, heard):
            transport.send(user_text("hello there"))
            transport.send({"type": "response.create"})
            await heard.wait_type("response.done")
            (call,) = socket_calls(server)
            received = [e["type"] for e in call.session.received]
    deltas = [e["delta"] for e in heard.raw("response.output_audio_transcript.delta")]
    assert "".join(deltas) == "hello there"
    # The echo server speaks text as a 440 Hz tone, 60 ms a character: all of it arrived.
    audio = heard.reply_audio()
    expected = tone(440, tone_ms_for_text("hello there"))
    assert abs(audio.size - expected.size) <= RATE_HZ // 100  # within 10 ms
    assert normalized_xcorr_peak(expected, audio, RATE_HZ // 100)[0] > 0.95
    # Audio came as WebSocket events, and never the WebRTC-only buffer events (§4.2).
    types = heard.types()
    assert "response.output_audio.delta" in types
    assert types.index("response.output_audio.done") < types.index("response.done")
    assert not [t for t in types if t.startswith("output_audio_buffer.")]
    # The configuration went as session.update before anything else, stating the wire format.
    assert received[:3] == ["session.update", "conversation.item.create", "response.create"]
    audio_config = heard.raw("session.updated")[0]["session"]["audio"]
    for side in ("input", "output"):
        assert audio_config[side]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert transport.connect_s is not None
    stages = [e.name for e in heard.events if isinstance(e, LinkState)]
    assert stages == ["WebSocket handshake", "session.created", "session.updated"]


async def test_a_spoken_turn_is_heard_by_server_vad_and_echoed_back() -> None:
    question = chirp(700)
    async with serve() as server:
        settings = settings_for(server.base_url, **{"turns.silence_ms": 300})
        mic = PcmQueue()
        config = config_of(settings, manual_turns=False)
        async with websocket(settings, config, mic) as (_, heard):
            mic.push(np.concatenate([silence(200), question, silence(900)]))
            await heard.wait_type("response.done", timeout_s=15)
    types = heard.types()
    for kind in ("speech_started", "speech_stopped", "committed"):
        assert f"input_audio_buffer.{kind}" in types
    # The echo responder plays the committed turn back: the chirp made it there and back
    # (48 → 24 kHz up, 48 → 24 → 48 kHz down).
    r, _ = normalized_xcorr_peak(question, heard.reply_audio())
    assert r > 0.8


async def test_a_tool_call_round_trip_with_the_client_session(tmp_path: Path) -> None:
    script = get_time_script()
    async with serve(responder=scripted(tmp_path, script)) as server:
        settings = settings_for(server.base_url, **{"tools.builtin": ["get_time"]})
        tools = registry_from_settings(settings)
        usage = UsageTotals.for_session(PriceTable.load(settings.pricing), "gpt-realtime", None)
        transport = await open_websocket_transport(
            settings, credential_source(settings, KEY), config_of(settings), None
        )
        session = Session(transport, tools, usage)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(transport.run())
                tasks.create_task(session.run())
                session.say("what time is it")
                async with asyncio.timeout(10):
                    await session.wait_idle()
                await transport.close()
        finally:
            await transport.close()
    (result,) = session.tool_results
    assert (result.name, result.ok) == ("get_time", True)
    # Said only if the tool's output reached the server (the step matches on it).
    assert list(session.assistant_text.values())[-1] == "It is time for tea."
    assert session.errors == []


# ---- barge-in ---------------------------------------------------------------------------------


async def test_truncate_cuts_the_item_at_what_was_heard_never_past_what_arrived() -> None:
    long_text = "a long answer " * 8  # 112 characters: 6.7 s of tone
    async with serve(generation_speed=2.0) as server:
        settings = settings_for(server.base_url)
        async with websocket(settings, config_of(settings)) as (transport, heard):
            transport.send(user_text(long_text))
            transport.send({"type": "response.create"})
            delta = await heard.wait_type("response.output_audio.delta", count=5)
            item_id = delta["item_id"]
            received_ms = transport.ledger.received_ms(item_id)
            assert received_ms is not None and received_ms > 200
            # The playout had 200 ms queued when the user barged in.
            cut = transport.truncate_unheard(RATE_HZ // 5)
            truncated = await heard.wait_type("conversation.item.truncated")
            # Claiming more than arrived is clamped to what arrived (the service would refuse).
            clamped = transport.truncate(item_id, 10**6)
            second = await heard.wait_type("conversation.item.truncated", count=2)
            # The output buffer is WebRTC-only: over a WebSocket, clearing it is an error.
            transport.send({"type": "output_audio_buffer.clear"})
            error = (await heard.wait_type("error"))["error"]
    assert cut is not None
    assert cut[0] == item_id
    assert received_ms - 200 - 1 <= truncated["audio_end_ms"] <= received_ms - 200 + 1
    assert truncated["item_id"] == item_id
    assert clamped < 10**6
    assert second["audio_end_ms"] == clamped
    assert error["code"] == "unsupported_event"
    assert [e for e in heard.raw("error") if e["error"]["param"] == "audio_end_ms"] == []


# ---- credentials ------------------------------------------------------------------------------


async def test_a_refused_key_is_an_auth_error_with_the_service_message() -> None:
    async with serve(keys=KeyStore.of([KEY], open=False)) as server:
        settings = settings_for(server.base_url)
        with pytest.raises(AuthError) as refused:
            await open_websocket_transport(
                settings, credential_source(settings, BAD_KEY), config_of(settings), None
            )
        assert socket_calls(server) == []
    assert "Incorrect API key provided" in refused.value.message
    assert "401" in refused.value.message
    assert "BadMiddlePart13579" not in refused.value.message, "the key is redacted"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def recording(**config: Any) -> AsyncIterator[tuple[str, list[tuple[str, JsonObject]]]]:
    """`voicecli serve`'s routes with each request's path+query and headers noted; the root."""
    config.setdefault("responder", EchoResponder)
    seen: list[tuple[str, JsonObject]] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.append((request.path_qs, dict(request.headers)))
        return await handler(request)

    async with asyncio.TaskGroup() as tasks:
        endpoints = Endpoints(ServerConfig(**config), tasks)
        app = web.Application(middlewares=[record])
        app.add_routes(endpoints.routes())
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            yield f"http://{host}:{port}", seen
        finally:
            await endpoints.close_all()
            await runner.cleanup()


async def test_azure_connects_at_openai_v1_with_the_deployment_and_api_key() -> None:
    async with recording(keys=KeyStore.of([KEY], open=False)) as (root, seen):
        flags = {
            "api.provider": "azure",
            "api.azure_endpoint": root,
            "api.azure_deployment": "my-realtime",
        }
        settings = load_settings(None, {}, {"api.api_key": KEY, **flags})
        async with websocket(settings, config_of(settings)) as (transport, heard):
            transport.send(user_text("hi"))
            transport.send({"type": "response.create"})
            await heard.wait_type("response.done")
    (path, headers), *_ = seen
    assert path == "/openai/v1/realtime?model=my-realtime"
    assert headers["api-key"] == KEY
    # Azure reads a Bearer token as an Entra ID token: the API key goes as api-key only.
    assert "Authorization" not in headers
    session = heard.raw("session.updated")[0]["session"]
    assert session["model"] == "my-realtime"


async def test_an_ephemeral_key_connects_with_its_minted_session() -> None:
    async with serve(keys=KeyStore.of([KEY], open=False)) as server:
        settings = settings_for(
            server.base_url,
            **{"auth.mode": "ephemeral", "session.instructions": "Answer like a pirate."},
        )
        async with websocket(settings, config_of(settings)) as (transport, heard):
            transport.send(user_text("ahoy"))
            transport.send({"type": "response.create"})
            await heard.wait_type("response.done")
            (call,) = socket_calls(server)
            received = [e["type"] for e in call.session.received]
    created = heard.raw("session.created")[0]["session"]
    assert created["instructions"] == "Answer like a pirate."
    # The key carries the session: no session.update (a token URL's backend choice must stand).
    assert received == ["conversation.item.create", "response.create"]
    stages = [e.name for e in heard.events if isinstance(e, LinkState)]
    assert stages == ["WebSocket handshake", "session.created"]


# ---- the link going away ----------------------------------------------------------------------


async def test_an_expired_session_is_an_error_then_a_disconnect_with_the_reason() -> None:
    async with serve(faults=ServeFaults(max_session_s=0.5)) as server:
        settings = settings_for(server.base_url)
        async with websocket(settings, config_of(settings)) as (_, heard):
            await heard.wait_for(lambda: heard.disconnected() is not None, 5)
    error = heard.raw("error")[0]["error"]
    assert error["code"] == "session_expired"
    gone = heard.disconnected()
    assert gone is not None
    assert "1001" in gone.cause
    assert "maximum duration of 60 minutes" in gone.cause


async def test_a_dropped_call_is_a_disconnect() -> None:
    async with serve(faults=ServeFaults(drop_after_s=0.3)) as server:
        settings = settings_for(server.base_url)
        async with websocket(settings, config_of(settings)) as (_, heard):
            await heard.wait_for(lambda: heard.disconnected() is not None, 5)
    gone = heard.disconnected()
    assert gone is not None
    assert "closed the WebSocket (code 1011" in gone.cause


async def test_a_server_that_goes_silent_is_noticed_by_the_keepalive() -> None:
    faults = ServeFaults(drop_after_s=0.3, drop_silently=True)
    async with serve(faults=faults) as server:
        settings = settings_for(server.base_url, **{"network.liveness_timeout_s": 1.0})
        async with websocket(settings, config_of(settings)) as (_, heard):
            await heard.wait_for(lambda: heard.disconnected() is not None, 5)
    gone = heard.disconnected()
    assert gone is not None
    assert gone.cause.startswith("no answer from 127.0.0.1:")


# ---- the WebRTC-blocked fallback --------------------------------------------------------------


async def test_with_webrtc_blocked_ice_fails_in_time_and_the_websocket_still_answers() -> None:
    async with serve(faults=ServeFaults(unreachable_ice=True)) as server:
        settings = settings_for(server.base_url, **{"network.connect_timeout_s": 1.0})
        config = config_of(settings)
        started = time.monotonic()
        with pytest.raises(NetworkError) as blocked:
            await open_transport(settings, KEY, config, PacedAudioTrack(PcmQueue().pull))
        failed_after = time.monotonic() - started
        async with websocket(settings, config) as (transport, heard):
            transport.send(user_text("are you there"))
            transport.send({"type": "response.create"})
            await heard.wait_type("response.done")
    assert "stalled at ICE connectivity checks" in blocked.value.message
    # The connect timeout, not aiortc's own 30+ s ICE failure, decides (generous margin).
    assert failed_after < 1.0 + 2.0
    deltas = heard.raw("response.output_audio_transcript.delta")
    assert "".join(d["delta"] for d in deltas) == "are you there"
    assert transport.connect_s is not None
