"""Composition root: builds credentials, transport, session and tools from Settings.

One code path for the real service and the local server: only the base URL and credentials
differ. With no key and no base URL configured, the local server starts in-process (the
embedded default a new user meets) and says so on stderr.

Connecting (:func:`connect`): ``network.transport`` picks WebRTC, the Realtime WebSocket, or
``auto``: WebRTC, and the WebSocket when WebRTC stalls at ICE or DTLS (UDP blocked); an auth
or service error would fail the same way over a WebSocket, so it does not fall back. A failed
attempt is retried when it is worth it (realtime/failures.py), with backoff, within
``network.retry_budget_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from aiortc import RTCIceServer
from aiortc.mediastreams import MediaStreamTrack

from voicecli.audio.dsp import rms_dbfs, silence
from voicecli.audio.formats import RATE_HZ, Pcm
from voicecli.audio.wav import read_wav_48k, write_wav
from voicecli.auth.credentials import (
    CredentialSource,
    api_client,
    api_endpoint,
    credential_source,
    request_headers,
)
from voicecli.auth.keys import KeyStore, resolve_key
from voicecli.config import Settings
from voicecli.errors import AuthError, InvalidEventError, NetworkError, OperationTimeout
from voicecli.realtime.failures import Backoff, Retry, retrying
from voicecli.realtime.pricing import PriceTable, UsageTotals
from voicecli.realtime.schema import check_client_event
from voicecli.realtime.session import Session
from voicecli.realtime.session_events import AudioState, SessionEvent
from voicecli.realtime.tools import ToolRegistry, ToolResult, registry_from_settings
from voicecli.realtime.transport import RemoteAudio
from voicecli.redact import redact
from voicecli.rtc.connection import RtcOptions, RtcTransport, Stage
from voicecli.rtc.signaling import Signaler
from voicecli.rtc.tracks import PacedAudioTrack, PcmQueue
from voicecli.transports.websocket import WebSocketTransport, open_websocket_transport

log = logging.getLogger(__name__)

EMBEDDED_KEY = "sk-local-embedded"
ICE_FALLBACK_S = 3.0  # auto: ICE + DTLS get this long (at most half the connect timeout)
COMMIT_TAIL_MS = 100
PLAYOUT_TAIL_S = 0.1  # the last RTP frames trail output_audio_buffer.stopped
AUDIBLE_DBFS = -50.0


@dataclass(frozen=True)
class AskRequest:
    text: str | None = None
    wav: Path | None = None
    out: Path | None = None
    text_only: bool = False
    timeout_s: float = 60.0


@dataclass
class AskResult:
    transcript: str
    user_transcript: str | None
    tool_calls: list[ToolResult]
    usage: UsageTotals
    call_id: str | None
    endpoint: str
    model: str
    timings: dict[str, float | None] = field(default_factory=dict)
    # time.monotonic() at each mark: CLOCK_MONOTONIC is system-wide, so a benchmark in another
    # process can measure from its own spawn time.
    monotonic: dict[str, float | None] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    transport: str = "webrtc"  # webrtc | websocket


# Endpoint and credentials.


@contextlib.asynccontextmanager
async def endpoint(settings: Settings, store: KeyStore) -> AsyncIterator[tuple[Settings, str]]:
    """The settings to connect with and the key; starts the embedded server when needed."""
    resolved = resolve_key(settings, store)
    if resolved is not None:
        yield settings, resolved.value
        return
    if settings.source("api.base_url") != "default":
        if _is_loopback(settings.api.base_url):
            yield settings, EMBEDDED_KEY  # a local `voicecli serve` accepts any key by default
            return
        raise AuthError("no API key for " + urlsplit(settings.api.base_url).netloc)
    async with embedded_server(settings.serve.embedded) as base_url:
        print(
            "voicecli: no API key found, using the embedded local server; add a key with "
            "`voicecli auth login` or OPENAI_API_KEY",
            file=sys.stderr,
        )
        api = settings.api.model_copy(update={"base_url": base_url})
        yield settings.model_copy(update={"api": api}), EMBEDDED_KEY


@contextlib.asynccontextmanager
async def embedded_server(wanted: str = "assistant") -> AsyncIterator[str]:
    from voicecli.server.app import running_server
    from voicecli.server.assistant import missing_packages
    from voicecli.server.echo import EchoResponder
    from voicecli.server.http import ServerConfig

    # The offline speech assistant when the `local` extra is installed, else echo (no crash).
    if wanted == "assistant" and not missing_packages():
        from voicecli.server.assistant.responder import assistant_factory

        responder = assistant_factory()
        async with running_server(ServerConfig(responder=responder)) as server:
            yield server.base_url
        return
    async with running_server(ServerConfig(responder=EchoResponder)) as server:
        yield server.base_url


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


def session_config(
    settings: Settings, tools: ToolRegistry, *, manual_turns: bool, text_only: bool
) -> dict[str, Any]:
    """The GA session sent with the call; validated like any outgoing event."""
    audio_in: dict[str, Any] = {"turn_detection": None if manual_turns else _turns(settings)}
    if settings.session.transcription_model:
        audio_in["transcription"] = {"model": settings.session.transcription_model}
    session: dict[str, Any] = {
        "type": "realtime",
        "model": model_name(settings),
        "output_modalities": ["text" if text_only else settings.session.output_modalities],
        "audio": {"input": audio_in, "output": {"voice": settings.session.voice}},
        "tools": tools.definitions(),
    }
    if settings.session.instructions:
        session["instructions"] = settings.session.instructions
    problem = check_client_event({"type": "session.update", "session": session})
    if problem is not None:
        raise InvalidEventError(
            f"the session configuration is invalid: {problem.message}", param=problem.param
        )
    return session


def model_name(settings: Settings) -> str:
    """The model the service is asked for: on Azure, the deployment name (§1.7)."""
    if settings.api.provider == "azure" and settings.api.azure_deployment:
        return settings.api.azure_deployment
    return settings.session.model


def _turns(settings: Settings) -> dict[str, Any] | None:
    turns = settings.turns
    if turns.vad == "off":
        return None
    if turns.vad == "semantic":
        return {"type": "semantic_vad", "eagerness": turns.eagerness}
    return {
        "type": "server_vad",
        "threshold": turns.threshold,
        "silence_duration_ms": turns.silence_ms,
        "prefix_padding_ms": turns.prefix_padding_ms,
    }


def rtc_options(settings: Settings, *, ice_timeout_s: float | None = None) -> RtcOptions:
    servers = tuple(
        RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
        for s in settings.network.ice_servers
    )
    return RtcOptions(
        ice_servers=servers,
        loopback=_is_loopback(settings.api.base_url),
        connect_timeout_s=settings.network.connect_timeout_s,
        liveness_timeout_s=settings.network.liveness_timeout_s,
        ice_timeout_s=ice_timeout_s,
    )


# Connecting: one attempt (dial), with fallback; attempts with retries (connect).

AnyTransport = RtcTransport | WebSocketTransport


class RtcBlocked(NetworkError):
    """WebRTC stalled at ICE or DTLS: the media path is blocked (UDP), the rest may work."""


@dataclass(frozen=True)
class Dial:
    """What to connect to, with which session; ``source`` is kept across attempts (a cached
    ephemeral key is reused until it expires or is refused)."""

    settings: Settings
    key: str = field(repr=False)
    session: dict[str, Any]
    source: CredentialSource
    notify: Callable[[str], None] = lambda _: None  # one line for the user (the fallback)

    @classmethod
    def of(cls, settings: Settings, key: str, session: dict[str, Any]) -> Dial:
        return cls(settings, key, session, credential_source(settings, key))

    @property
    def renewable_key(self) -> bool:
        return self.settings.auth.mode != "direct"


@dataclass(frozen=True)
class Media:
    """The audio ends of a transport. ``mic`` makes a fresh track for each attempt: aiortc's
    sender stops its track when a connection that carried audio closes."""

    mic: Callable[[], MediaStreamTrack]
    on_audio: RemoteAudio | None = None
    on_rtp_sent: Callable[[], None] | None = None


async def dial(target: Dial, media: Media, mode: str | None = None) -> AnyTransport:
    """One connection attempt over ``mode`` (default: ``network.transport``)."""
    mode = mode or target.settings.network.transport
    if mode == "websocket":
        return await _open_ws(target, media)
    limit = None if mode == "webrtc" else _ice_limit(target.settings)
    try:
        return await _open_rtc(target, media, limit)
    except RtcBlocked as exc:
        if mode == "webrtc":
            raise
        target.notify(f"WebRTC could not connect ({exc.message}); trying the WebSocket")
        return await _open_ws(target, media)


async def connect(
    target: Dial,
    media: Media,
    on_retry: Callable[[Retry], None] = lambda _: None,
    mode: str | None = None,
    budget_s: float | None = None,
) -> AnyTransport:
    """:func:`dial` until it works, a failure is fatal, or the retry budget is spent
    (``budget_s``, else ``network.retry_budget_s``)."""
    budget = target.settings.network.retry_budget_s if budget_s is None else budget_s
    backoff = Backoff(budget_s=budget)
    return await retrying(
        lambda: dial(target, media, mode),
        backoff,
        renewable_key=target.renewable_key,
        on_retry=on_retry,
    )


def _ice_limit(settings: Settings) -> float:
    return min(ICE_FALLBACK_S, settings.network.connect_timeout_s / 2)


async def _open_ws(target: Dial, media: Media) -> WebSocketTransport:
    return await open_websocket_transport(
        target.settings, target.source, target.session, media.mic(), media.on_audio
    )


async def _open_rtc(target: Dial, media: Media, ice_timeout_s: float | None) -> RtcTransport:
    """Credentials → signaling → a connected WebRTC transport (its session already created)."""
    settings, session = target.settings, target.session
    credentials = await target.source.get(session)
    endpoint = api_endpoint(settings)
    ephemeral = credentials.kind != "standard"
    signaler = Signaler(
        api_client(endpoint, credentials.value),
        timeout_s=endpoint.timeout_s,
        extra_headers=None if ephemeral else request_headers(endpoint),
    )
    options = rtc_options(settings, ice_timeout_s=ice_timeout_s)
    transport = RtcTransport(signaler, options, media.mic(), media.on_audio, media.on_rtp_sent)
    try:
        await transport.connect(None if ephemeral else session)
    except AuthError:
        target.source.invalidate()
        await transport.close()
        raise
    except NetworkError as exc:
        stage = transport.stage
        await transport.close()
        if stage in (Stage.ICE, Stage.DTLS):
            raise RtcBlocked(exc.message, hint=exc.hint) from None
        raise
    except BaseException:
        await transport.close()
        raise
    return transport


async def open_transport(
    settings: Settings,
    key: str,
    session: dict[str, Any],
    mic: MediaStreamTrack,
    on_audio: RemoteAudio | None = None,
    on_rtp_sent: Callable[[], None] | None = None,
) -> RtcTransport:
    """One WebRTC attempt, no retry or fallback: credentials → signaling → connected."""
    target = Dial.of(settings, key, session)
    return await _open_rtc(target, Media(lambda: mic, on_audio, on_rtp_sent), None)


# ask


class ReplyRecorder:
    """The reply's audio, from the first `output_audio_buffer.started` on, for --out."""

    def __init__(self) -> None:
        self.recording = False
        self.chunks: list[Pcm] = []
        self.first_audible: float | None = None

    def on_audio(self, pcm: Pcm, pts: int | None = None) -> None:
        if not self.recording:
            return
        self.chunks.append(pcm)
        if self.first_audible is None and rms_dbfs(pcm) > AUDIBLE_DBFS:
            self.first_audible = time.monotonic()

    def on_event(self, event: SessionEvent) -> None:
        if isinstance(event, AudioState) and event.state == "started":
            self.recording = True

    def audio(self) -> Pcm:
        """Trimmed of the silence before and after the reply (RTP never stops)."""
        if not self.chunks:
            return np.zeros(0, dtype=np.int16)
        pcm = np.concatenate(self.chunks)
        loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 100)
        return pcm[loud[0] : loud[-1] + 1] if loud.size else pcm[:0]


async def run_ask(settings: Settings, request: AskRequest, store: KeyStore) -> AskResult:
    """Connect, send one prompt, handle tool calls, wait for the whole answer, hang up."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(request.timeout_s), endpoint(settings, store) as (live, key):
            return await _ask(live, key, request, started)
    except TimeoutError:
        raise OperationTimeout(f"no complete answer within {request.timeout_s:g} s") from None


async def _ask(settings: Settings, key: str, request: AskRequest, started: float) -> AskResult:
    tools = registry_from_settings(settings)
    session_cfg = session_config(settings, tools, manual_turns=True, text_only=request.text_only)
    mic, recorder = PcmQueue(), ReplyRecorder()
    target = replace(Dial.of(settings, key, session_cfg), notify=_say)
    media = Media(lambda: PacedAudioTrack(mic.pull), recorder.on_audio)
    transport = await connect(target, media, on_retry=_say_retry, budget_s=_ask_budget(settings))
    # Over a WebSocket the reply's audio comes before the client knows speech started.
    recorder.recording = transport.kind == "websocket"
    connected = time.monotonic()
    usage = UsageTotals.for_session(
        PriceTable.load(settings.pricing),
        settings.session.model,
        settings.session.transcription_model or None,
    )
    session = Session(transport, tools, usage, recorder.on_event)
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(transport.run())
            tasks.create_task(session.run())
            await _prompt(session, mic, request)
            await session.wait_idle()
            if request.out is not None:
                await asyncio.sleep(PLAYOUT_TAIL_S)
            await transport.close()
    finally:
        await transport.close()
    if session.ended is not None and session.busy():
        raise NetworkError(f"the call ended before the answer: {session.ended.cause}")
    if request.out is not None:
        write_wav(request.out, recorder.audio(), RATE_HZ)
    return _result(settings, session, transport, started, connected, recorder)


def _ask_budget(settings: Settings) -> float:
    """ask fails fast (a script sees the exit code at once) unless retries are configured."""
    explicit = settings.source("network.retry_budget_s") != "default"
    return settings.network.retry_budget_s if explicit else 0.0


def _say(line: str) -> None:
    print(f"voicecli: {redact(line)}", file=sys.stderr)


def _say_retry(retry: Retry) -> None:
    _say(f"{retry.cause}; trying again in {retry.delay_s:.1f} s (attempt {retry.attempt + 1})")


async def _prompt(session: Session, mic: PcmQueue, request: AskRequest) -> None:
    if request.wav is not None:
        mic.push(read_wav_48k(request.wav))
        # Then a little silence: the question's last frame (and Opus's ~6.5 ms delay) must
        # reach the service before the commit, which travels on the faster data channel.
        mic.push(silence(COMMIT_TAIL_MS))
        await mic.drained.wait()  # streamed in real time through the mic track
        session.commit_audio()
    else:
        session.say(request.text or "")


def _result(
    settings: Settings,
    session: Session,
    transport: AnyTransport,
    started: float,
    connected: float,
    recorder: ReplyRecorder,
) -> AskResult:
    done = time.monotonic()
    first = recorder.first_audible
    return AskResult(
        transcript="\n".join(t for t in session.assistant_text.values() if t),
        user_transcript=" ".join(session.user_text.values()) or None,
        tool_calls=list(session.tool_results),
        usage=session.usage,
        call_id=transport.call_id,
        endpoint=settings.api.base_url,
        model=settings.session.model,
        timings={
            "connect_s": connected - started,
            "first_audio_s": None if first is None else first - started,
            "total_s": done - started,
        },
        monotonic={"started": started, "connected": connected, "first_audio": first, "done": done},
        errors=[f"{e.code}: {e.message}" for e in session.errors],
        transport=transport.kind,
    )
