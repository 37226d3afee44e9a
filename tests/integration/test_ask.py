"""`voicecli ask` end to end: run_ask (and the CLI) against `voicecli serve` over real WebRTC.

In-process tests start the server with `serve(...)` (or `recording_server(...)`, the same
endpoints behind a middleware that notes each HTTP request) and call run_ask as the CLI does.
CLI tests run `python -m voicecli` as a subprocess, against a `voicecli serve` subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from tests.integration.conftest import get_time_script, scripted, serve
from voicecli.app import AskRequest, AskResult, open_transport, run_ask, session_config
from voicecli.audio.dsp import normalized_xcorr_peak, resample
from voicecli.audio.formats import RATE_HZ, Pcm
from voicecli.audio.wav import read_wav, write_wav
from voicecli.auth.keys import MemoryKeyStore
from voicecli.config import Settings, load_settings
from voicecli.errors import (
    EXIT_AUTH,
    EXIT_SERVICE,
    AuthError,
    InvalidEventError,
    NetworkError,
    ServiceError,
)
from voicecli.realtime.tools import registry_from_settings
from voicecli.realtime.transport import Disconnected
from voicecli.rtc.tracks import PacedAudioTrack, PcmQueue
from voicecli.server.app import RunningServer
from voicecli.server.echo import EchoResponder
from voicecli.server.faults import ServeFaults
from voicecli.server.http import Endpoints, ServerConfig
from voicecli.server.keys import KeyStore, Minted
from voicecli.server.responders import Reply, ResponseRequest

pytestmark = pytest.mark.integration

KEY_MIDDLE = "M1ddleOfTheKey2468"
KEY = f"sk-test-{KEY_MIDDLE}wxyz"
BAD_MIDDLE = "BadMiddlePart13579"
BAD_KEY = f"sk-test-{BAD_MIDDLE}abcd"
JsonObject = dict[str, Any]


def settings_for(base_url: str, **flags: Any) -> Settings:
    return load_settings(None, {}, {"api.base_url": base_url, "api.api_key": KEY, **flags})


async def ask(settings: Settings, **request: Any) -> AskResult:
    request.setdefault("timeout_s", 15.0)
    return await run_ask(settings, AskRequest(**request), MemoryKeyStore())


def sweep(f0: float, f1: float, ms: int, rate: int = RATE_HZ) -> Pcm:
    """A linear chirp at -12 dBFS peak with 5 ms fades.

    A sweep correlates with itself at one lag only (unlike a tone, which matches itself every
    period), so a high normalised cross-correlation peak means "the same audio, aligned".
    """
    n = rate * ms // 1000
    t = np.arange(n) / rate
    wave_ = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * n / rate)))
    fade = rate * 5 // 1000
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade, endpoint=False))
    wave_[:fade] *= ramp
    wave_[n - fade :] *= ramp[::-1]
    return np.rint(wave_ * 32768 * 10 ** (-12 / 20)).astype(np.int16)


# ---- a server that notes every HTTP request ---------------------------------------------------


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    content_type: str
    auth: tuple[str, ...]  # which credentials came: "bearer ek_", "bearer key", "api-key"
    status: int
    session: JsonObject | None = None  # for an answered call: the session the call started with


@dataclass
class RecordingKeys(KeyStore):
    """The server's key store, noting each ephemeral key it mints."""

    minted: list[Minted] = field(default_factory=list)

    def mint(self, session: JsonObject, seconds: int) -> Minted:
        minted = super().mint(session, seconds)
        self.minted.append(minted)
        return minted


def _auth_of(request: web.Request) -> tuple[str, ...]:
    found = []
    bearer = request.headers.get("Authorization", "")
    if bearer.lower().startswith("bearer "):
        found.append("bearer ek_" if bearer[7:].startswith("ek_") else "bearer key")
    if "api-key" in request.headers:
        found.append("api-key")
    return tuple(found)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorded:
    server: RunningServer
    seen: list[Seen]
    runner: web.AppRunner

    def open_connections(self) -> int:
        """HTTP connections the server still holds open (keep-alive ones included)."""
        return len(self.runner.server.connections) if self.runner.server is not None else 0


@contextlib.asynccontextmanager
async def recording_server(**config: Any) -> AsyncIterator[Recorded]:
    """`voicecli serve`'s own endpoints and routes, with a middleware noting each request."""
    config.setdefault("responder", EchoResponder)
    seen: list[Seen] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    async with asyncio.TaskGroup() as tasks:
        endpoints = Endpoints(ServerConfig(**config), tasks)

        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                seen.append(Seen(request.method, request.path, "", _auth_of(request), exc.status))
                raise
            call_id = response.headers.get("Location", "").rsplit("/", 1)[-1]
            call = endpoints.calls.get(call_id)
            session = dict(call.session.session) if call is not None else None
            seen.append(
                Seen(
                    request.method,
                    request.path,
                    request.content_type,
                    _auth_of(request),
                    response.status,
                    session,
                )
            )
            return response

        app = web.Application(middlewares=[record])
        app.add_routes(endpoints.routes())
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
            yield Recorded(RunningServer(base_url, endpoints), seen, runner)
        finally:
            await endpoints.close_all()
            await runner.cleanup()
            sock.close()


async def poll_until(condition: Callable[[], bool], timeout_s: float) -> None:
    """Wait for server state that has no event to wait on; TimeoutError if it never holds."""
    async with asyncio.timeout(timeout_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


def calls_to(seen: list[Seen], suffix: str) -> list[Seen]:
    return [s for s in seen if s.method == "POST" and s.path.endswith(suffix)]


# ---- answers ----------------------------------------------------------------------------------


async def test_a_text_prompt_is_answered_over_webrtc() -> None:
    async with serve() as server:
        result = await ask(settings_for(server.base_url), text="hello there")
    assert result.transcript == "hello there"  # the echo responder says the prompt back
    assert result.errors == []
    assert result.call_id is not None and result.call_id.startswith("rtc_")
    assert result.endpoint == server.base_url
    connect, first_audio, total = (
        result.timings[k] for k in ("connect_s", "first_audio_s", "total_s")
    )
    assert connect is not None and first_audio is not None and total is not None
    assert 0 < connect <= first_audio <= total < 10
    # 11 characters of tone "speech" at 60 ms each: the answer took at least that long to play.
    assert total - first_audio >= 0.6
    tokens = result.usage.tokens
    assert tokens.input > 0 and tokens.output > 0 and tokens.audio_out > 0
    assert result.usage.responses == 1


async def test_a_wav_question_gets_the_scripted_wav_reply_written_to_out(tmp_path: Path) -> None:
    reply = sweep(2000, 400, 700)
    write_wav(tmp_path / "reply.wav", reply, RATE_HZ)
    question = tmp_path / "question.wav"
    write_wav(question, sweep(300, 2500, 400, rate=24_000), 24_000)  # any rate is resampled
    script = """
    [[step]]
    on = "speech"
    transcript = "play me a sweep"
    [[step.reply]]
    say = "Here is a sweep."
    wav = "reply.wav"
    """
    out = tmp_path / "answer.wav"
    async with serve(responder=scripted(tmp_path, script)) as server:
        result = await ask(settings_for(server.base_url), wav=question, out=out)
    # The spoken question was committed as a turn: the server transcribed it (the scripted
    # transcript) and answered it with the speech step, not the fallback.
    assert result.user_transcript == "play me a sweep"
    assert result.transcript == "Here is a sweep."
    assert result.timings["first_audio_s"] is not None
    written, rate = read_wav(out)
    assert rate == RATE_HZ
    # One Opus hop (server → client) keeps a sweep's waveform nearly intact: measured r is
    # 0.987-0.997 (and dsp.py documents > 0.99 for tones, > 0.9 for speech). 0.9 leaves room
    # for codec variation while still failing for wrong, missing or mangled audio (the
    # reversed sweep, an unrelated sweep or the fallback's 440 Hz tone each score about 0.02).
    r, _lag = normalized_xcorr_peak(reply, written)
    assert r > 0.9
    assert abs(written.size - reply.size) < RATE_HZ // 20  # trimmed to the reply (±50 ms)


class RecordingEcho(EchoResponder):
    """The echo responder, keeping each committed user turn it was asked to answer."""

    def __init__(self, turns: list[Pcm]) -> None:
        self.turns = turns

    async def respond(self, request: ResponseRequest) -> Reply:
        if request.user_audio is not None:
            self.turns.append(request.user_audio.copy())
        return await super().respond(request)


async def test_the_echoed_reply_to_a_wav_question_is_that_question(tmp_path: Path) -> None:
    question = sweep(300, 2500, 600, rate=24_000)
    write_wav(tmp_path / "q.wav", question, 24_000)
    async with serve() as server:
        result = await ask(
            settings_for(server.base_url), wav=tmp_path / "q.wav", out=tmp_path / "a.wav"
        )
    written, _ = read_wav(tmp_path / "a.wav")
    assert result.user_transcript is not None and result.user_transcript.startswith("[speech")
    # Question → client Opus → server → server Opus → reply: two codec hops (and the cut tail
    # reported by the next test) give a measured r of 0.94-0.96; an echo of silence or of the
    # wrong audio scores near 0.
    r, _lag = normalized_xcorr_peak(resample(question, 24_000, RATE_HZ), written)
    assert r > 0.9


async def test_the_whole_wav_question_reaches_the_server_before_the_commit(
    tmp_path: Path,
) -> None:
    question = sweep(300, 2500, 600)
    write_wav(tmp_path / "q.wav", question, RATE_HZ)
    turns: list[Pcm] = []
    async with serve(responder=lambda: RecordingEcho(turns)) as server:
        await ask(settings_for(server.base_url), wav=tmp_path / "q.wav")
    (committed,) = turns
    r, lag = normalized_xcorr_peak(question, committed)  # the question starts at `lag`
    assert r > 0.9
    received_ms = (committed.size - lag) * 1000 / RATE_HZ
    # Everything the user recorded must be in the turn the model answers. The last RTP frame
    # (and Opus's 6.5 ms of codec delay, flushed only by the next frame) must arrive before
    # input_audio_buffer.commit is sent; 2 ms of slack for edge effects.
    assert received_ms >= 600 - 2, f"the server got {received_ms:.1f} ms of a 600 ms question"


# ---- tools ------------------------------------------------------------------------------------


async def test_the_builtin_get_time_tool_round_trip(tmp_path: Path) -> None:
    script = get_time_script()
    before = datetime.now(UTC)
    async with recording_server(responder=scripted(tmp_path, script)) as rec:
        result = await ask(
            settings_for(rec.server.base_url, **{"tools.builtin": ["get_time"]}),
            text="what time is it",
        )
    after = datetime.now(UTC)
    (call,) = result.tool_calls
    assert (call.name, call.ok) == ("get_time", True)
    output = json.loads(call.output)
    assert output["timezone"] == "UTC"
    assert int(output["time"].split(":")[0]) in {before.hour, after.hour}
    assert output["date"] in {before.date().isoformat(), after.date().isoformat()}
    # The follow-up step only matches the tool's output as the server received it: this
    # transcript proves the output reached the server (else the fallback would be said).
    assert result.transcript == "It is time for tea."
    assert result.errors == []
    # And the session the call started with declared the tool.
    (answered,) = [s for s in calls_to(rec.seen, "/realtime/calls") if s.status == 201]
    assert answered.session is not None
    assert [t["name"] for t in answered.session["tools"]] == ["get_time"]


async def test_a_command_tool_from_the_config_file_round_trip(tmp_path: Path) -> None:
    program = tmp_path / "echo_args.py"
    program.write_text(
        "import json, sys\nprint(json.dumps({'got': json.load(sys.stdin)}))\n", encoding="utf-8"
    )
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[tools]
builtin = []

[[tools.command]]
name = "weather"
description = "The weather in a city."
command = [{json.dumps(sys.executable)}, {json.dumps(str(program))}]

[tools.command.parameters]
type = "object"
required = ["city"]

[tools.command.parameters.properties.city]
type = "string"
""",
        encoding="utf-8",
    )
    script = """
    [[step]]
    on = "text"
    [[step.reply]]
    call = "weather"
    arguments = { city = "Paris" }
    [[step]]
    on = "tool_output"
    match = "weather: {\\"got\\": {\\"city\\": \\"Paris\\"}}"
    [[step.reply]]
    say = "Sunny in Paris."
    """
    async with serve(responder=scripted(tmp_path, script)) as server:
        settings = load_settings(config, {}, {"api.base_url": server.base_url, "api.api_key": KEY})
        result = await ask(settings, text="weather in Paris?")
    (call,) = result.tool_calls
    assert (call.name, call.ok) == ("weather", True)
    assert json.loads(call.output) == {"got": {"city": "Paris"}}  # its stdin was the arguments
    assert result.transcript == "Sunny in Paris."


# ---- the event channel against a strict server ------------------------------------------------


@contextlib.asynccontextmanager
async def strict_transport(server: RunningServer) -> AsyncIterator[Any]:
    settings = settings_for(server.base_url)
    session = session_config(
        settings, registry_from_settings(settings), manual_turns=True, text_only=False
    )
    transport = await open_transport(settings, KEY, session, PacedAudioTrack(PcmQueue().pull))
    try:
        yield transport
    finally:
        await transport.close()


async def next_disconnect(transport: Any, timeout_s: float) -> Disconnected | None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            async for event in transport.events():
                if isinstance(event, Disconnected):
                    return event
    return None


async def test_an_off_schema_tool_output_is_refused_before_the_wire() -> None:
    async with (
        serve(faults=ServeFaults(strict_tool_output=True)) as server,
        strict_transport(server) as transport,
    ):
        sent_before = len(transport.channel.sent)
        bad = {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "call_1", "output": {"a": 1}},
        }
        with pytest.raises(InvalidEventError) as refused:
            transport.send(bad)
        assert refused.value.param == "item.output"
        assert len(transport.channel.sent) == sent_before
        # The strict server would have closed the channel for it; it is still up.
        assert await next_disconnect(transport, 0.5) is None
        assert transport.channel.open
        received = server.endpoints.calls[transport.call_id].session.received
        assert [e["type"] for e in received] == []


async def test_a_channel_closed_by_the_service_names_the_event_it_rejected() -> None:
    async with (
        serve(faults=ServeFaults(strict_tool_output=True)) as server,
        strict_transport(server) as transport,
    ):
        # Valid on the wire, but for a call the service never made: the strict server (like
        # the real one over WebRTC, realtime-protocol.md §5.2) closes the data channel.
        transport.send(
            {
                "type": "conversation.item.create",
                "event_id": "evt_unknown_call_1",
                "item": {"type": "function_call_output", "call_id": "call_nope", "output": "{}"},
            }
        )
        gone = await next_disconnect(transport, 3.0)
    assert gone is not None
    assert "conversation.item.create" in gone.cause
    assert "evt_unknown_call_1" in gone.cause
    assert "the service likely rejected that event" in gone.cause


# ---- errors -----------------------------------------------------------------------------------


async def test_a_refused_key_is_an_auth_error_with_the_service_message() -> None:
    async with serve(keys=KeyStore.of([KEY], open=False)) as server:
        settings = load_settings(
            None, {}, {"api.base_url": server.base_url, "api.api_key": BAD_KEY}
        )
        with pytest.raises(AuthError) as refused:
            await ask(settings, text="hi")
    message = refused.value.message
    assert "Incorrect API key provided" in message
    assert "401" in message
    assert BAD_KEY not in message and BAD_MIDDLE not in message
    assert refused.value.exit_code == EXIT_AUTH


@pytest.mark.parametrize(
    ("status", "code", "says"),
    [
        (500, None, "The server had an error while processing your request"),
        (429, "insufficient_quota", "You exceeded your current quota"),
    ],
)
async def test_service_errors_from_the_call_endpoint(
    status: int, code: str | None, says: str
) -> None:
    async with serve(faults=ServeFaults(fail_calls=status)) as server:
        with pytest.raises(ServiceError) as failed:
            await ask(settings_for(server.base_url), text="hi")
    assert failed.value.status == status
    assert failed.value.code == code
    assert says in failed.value.message
    assert failed.value.exit_code == EXIT_SERVICE
    assert failed.value.hint  # the user is told what to do next


async def test_a_slow_sdp_answer_times_out_naming_signaling() -> None:
    faults = ServeFaults(answer_delay_ms=1500)
    async with serve(faults=faults) as server:
        started = time.monotonic()
        with pytest.raises(NetworkError) as stalled:
            await ask(
                settings_for(server.base_url, **{"network.connect_timeout_s": 0.5}), text="hi"
            )
        took = time.monotonic() - started
    assert stalled.value.message == "could not connect within 0.5 s: stalled at signaling"
    assert stalled.value.hint is not None and "SDP offer" in stalled.value.hint
    assert took < 1.4, "the connect timeout bounds the whole attempt"


async def test_a_server_that_goes_silent_times_out_naming_session_created() -> None:
    faults = ServeFaults(drop_after_s=0, drop_silently=True)
    async with serve(faults=faults) as server:
        with pytest.raises(NetworkError) as stalled:
            await ask(
                settings_for(server.base_url, **{"network.connect_timeout_s": 1.0}), text="hi"
            )
    assert stalled.value.message == "could not connect within 1 s: stalled at session.created"


async def test_an_unanswering_stun_server_does_not_stall_the_connect() -> None:
    # Port 9 (discard) on loopback: nothing answers there. Loopback only, by rule.
    ice = [{"urls": ["stun:127.0.0.1:9"]}]
    async with serve() as server:
        flags = {"network.ice_servers": ice, "network.connect_timeout_s": 3.0}
        result = await ask(settings_for(server.base_url, **flags), text="hi")
    connect = result.timings["connect_s"]
    assert connect is not None
    # aioice waits 5 s for STUN answers by default; gathering must be bounded well below that.
    assert connect < 2.0, f"connect took {connect:.2f} s"
    assert result.transcript == "hi"


# ---- credentials and endpoints ----------------------------------------------------------------


async def test_ephemeral_mode_mints_a_key_and_calls_with_raw_sdp() -> None:
    keys = RecordingKeys(standard=frozenset([KEY]))
    async with recording_server(keys=keys) as rec:
        result = await ask(
            settings_for(rec.server.base_url, **{"auth.mode": "ephemeral"}), text="hi"
        )
    assert result.transcript == "hi"
    (minted,) = keys.minted
    assert minted.session["model"] == "gpt-realtime-2.1"  # the session went into the key
    (mint,) = calls_to(rec.seen, "/v1/realtime/client_secrets")
    assert (mint.status, mint.auth) == (200, ("bearer key",))
    (call,) = calls_to(rec.seen, "/v1/realtime/calls")
    # An ephemeral key carries its session: the offer goes as raw SDP, never multipart.
    assert (call.status, call.content_type, call.auth) == (201, "application/sdp", ("bearer ek_",))
    assert KEY not in repr(rec.seen)


def azure_settings(server: RunningServer, **flags: Any) -> Settings:
    root = server.base_url.removesuffix("/v1")
    return load_settings(
        None,
        {},
        {
            "api.provider": "azure",
            "api.azure_endpoint": root,
            "api.azure_deployment": "my-realtime",
            "api.api_key": KEY,
            **flags,
        },
    )


async def test_azure_calls_go_to_openai_v1_with_the_key_as_api_key() -> None:
    keys = KeyStore.of([KEY], open=False)
    async with recording_server(keys=keys) as rec:
        result = await ask(azure_settings(rec.server), text="hello azure")
    assert result.transcript == "hello azure"
    (call,) = calls_to(rec.seen, "/realtime/calls")
    assert call.path == "/openai/v1/realtime/calls"
    assert (call.status, call.content_type) == (201, "multipart/form-data")
    # Azure reads a Bearer token as an Entra ID token: the API key goes as api-key only.
    assert call.auth == ("api-key",)
    (hangup,) = calls_to(rec.seen, "/hangup")
    assert hangup.path == f"/openai/v1/realtime/calls/{result.call_id}/hangup"
    assert (hangup.status, hangup.auth) == (200, ("api-key",))


async def test_azure_direct_calls_name_the_deployment_as_the_model() -> None:
    # On Azure the model of a session is the deployment (realtime-protocol.md §1.7); the
    # ephemeral path does this (credentials.Minter), the direct path must too.
    async with recording_server(keys=KeyStore.of([KEY], open=False)) as rec:
        await ask(azure_settings(rec.server), text="hi")
    (call,) = calls_to(rec.seen, "/realtime/calls")
    assert call.session is not None
    assert call.session["model"] == "my-realtime"


async def test_azure_ephemeral_mints_for_the_deployment() -> None:
    keys = RecordingKeys(standard=frozenset([KEY]))
    async with recording_server(keys=keys) as rec:
        result = await ask(azure_settings(rec.server, **{"auth.mode": "ephemeral"}), text="hi")
    assert result.transcript == "hi"
    (minted,) = keys.minted
    assert minted.session["model"] == "my-realtime"
    (mint,) = calls_to(rec.seen, "/realtime/client_secrets")
    assert (mint.path, mint.auth) == ("/openai/v1/realtime/client_secrets", ("api-key",))
    (call,) = calls_to(rec.seen, "/realtime/calls")
    assert (call.path, call.content_type) == ("/openai/v1/realtime/calls", "application/sdp")
    assert "bearer ek_" in call.auth


async def test_the_call_is_hung_up_when_the_answer_is_complete() -> None:
    async with recording_server() as rec:
        result = await ask(settings_for(rec.server.base_url), text="bye")
        hangups = calls_to(rec.seen, "/hangup")
        await poll_until(lambda: not rec.server.endpoints.calls, 1.0)
    assert [(h.path, h.status) for h in hangups] == [
        (f"/v1/realtime/calls/{result.call_id}/hangup", 200)
    ]


async def test_no_http_connection_is_left_open_after_an_answer() -> None:
    """voicecli closes its HTTP client itself; it must not wait for the garbage collector.

    A leaked client keeps a keep-alive connection (a socket and its transport) per call:
    one per reconnect in a long session, and a ResourceWarning (an error under this project's
    warnings-as-errors) wherever the collector finds it later. The collector is paused here so
    that it cannot close the leak for the product.
    """
    gc.disable()
    try:
        async with recording_server() as rec:
            await ask(settings_for(rec.server.base_url), text="bye")
            with contextlib.suppress(TimeoutError):
                await poll_until(lambda: rec.open_connections() == 0, 1.0)
            left_open = rec.open_connections()
    finally:
        gc.enable()
    assert left_open == 0, f"{left_open} HTTP connection(s) still open 1 s after the answer"


@pytest.mark.parametrize(
    ("flags", "text_only"),
    [({}, True), ({"session.output_modalities": "text"}, False)],
    ids=["--text-only", "config"],
)
async def test_text_only_answers_in_text(flags: dict[str, Any], text_only: bool) -> None:
    async with serve() as server:
        settings = settings_for(server.base_url, **flags)
        result = await ask(settings, text="in writing", text_only=text_only)
    assert result.transcript == "in writing"
    assert result.timings["first_audio_s"] is None
    assert result.usage.tokens.audio_out == 0
    assert result.usage.tokens.text_out > 0


def test_text_only_with_out_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "voicecli",
            "ask",
            "hi",
            "--text-only",
            "--out",
            str(tmp_path / "a.wav"),
        ],
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: --out needs audio")
    assert not (tmp_path / "a.wav").exists()


# ---- the CLI ----------------------------------------------------------------------------------


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No OPENAI_*/VOICECLI_* from the developer, an empty config dir, and no keyring."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VOICECLI_"))}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    env.update(extra)
    return env


def voicecli(
    *args: str, env: dict[str, str], cwd: Path, timeout_s: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicecli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout_s,
    )


@pytest.fixture(scope="module")
def serve_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`voicecli serve --api-key KEY` as its own process; yields its base URL."""
    home = tmp_path_factory.mktemp("serve")
    process = subprocess.Popen(
        [sys.executable, "-m", "voicecli", "serve", "--port", "0", "--api-key", KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=cli_env(home),
        cwd=home,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:"), f"serve did not start: {base_url!r}"
        yield base_url
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_cli_refused_key_exits_3_with_one_error_line_and_no_key(
    serve_process: str, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, OPENAI_API_KEY=BAD_KEY, OPENAI_BASE_URL=serve_process)
    done = voicecli("ask", "hi", env=env, cwd=tmp_path)
    assert done.returncode == EXIT_AUTH
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("error: ") and "Incorrect API key provided" in lines[0]
    assert lines[1].startswith("hint: ")
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    for secret in (BAD_KEY, BAD_MIDDLE):
        assert secret not in done.stdout + done.stderr


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_cli_json_output_never_shows_the_key(
    serve_process: str, tmp_path: Path, debug: bool
) -> None:
    env = cli_env(tmp_path, OPENAI_API_KEY=KEY, OPENAI_BASE_URL=serve_process)
    args = ["--debug"] if debug else []
    done = voicecli(*args, "ask", "--json", "hello json", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for secret in (KEY, KEY_MIDDLE):
        assert secret not in done.stdout
        assert secret not in done.stderr
    if debug:  # the debug run really logged: HTTP requests, SDP, events
        assert "Sending HTTP Request" in done.stderr
    answer = json.loads(done.stdout)
    assert answer["transcript"] == "hello json"
    assert answer["call_id"].startswith("rtc_")
    assert answer["endpoint"] == serve_process
    assert answer["errors"] == []
    assert answer["usage"]["output_tokens"] > 0
    assert set(answer["timings"]) >= {"connect_s", "first_audio_s", "total_s"}


def test_cli_without_any_key_uses_the_embedded_server(tmp_path: Path) -> None:
    # Echo pinned: its reply proves the embedded server answered (the assistant, the default
    # with the `local` extra, has its own tests in test_assistant.py).
    env = cli_env(tmp_path, VOICECLI_SERVE_EMBEDDED="echo")
    done = voicecli("ask", "hello there", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello there\n"
    (line,) = done.stderr.splitlines()
    assert "embedded local server" in line
    assert "voicecli auth login" in line and "OPENAI_API_KEY" in line
