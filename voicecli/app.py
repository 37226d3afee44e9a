"""Composition root: builds credentials, transport, session and tools from Settings.

One code path for the real service and the local server: only the base URL and credentials
differ. With no key and no base URL configured, the local server starts in-process (the
embedded default a new user meets) and says so on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from aiortc import RTCIceServer
from aiortc.mediastreams import MediaStreamTrack

from voicecli.audio.dsp import rms_dbfs, silence
from voicecli.audio.formats import RATE_HZ, Pcm
from voicecli.audio.wav import read_wav_48k, write_wav
from voicecli.auth.credentials import api_client, api_endpoint, credential_source, request_headers
from voicecli.auth.keys import KeyStore, resolve_key
from voicecli.config import Settings
from voicecli.errors import AuthError, InvalidEventError, NetworkError, OperationTimeout
from voicecli.realtime.pricing import PriceTable, UsageTotals
from voicecli.realtime.schema import check_client_event
from voicecli.realtime.session import Session
from voicecli.realtime.session_events import AudioState, SessionEvent
from voicecli.realtime.tools import ToolRegistry, ToolResult, registry_from_settings
from voicecli.realtime.transport import RemoteAudio
from voicecli.rtc.connection import RtcOptions, RtcTransport
from voicecli.rtc.signaling import Signaler
from voicecli.rtc.tracks import PacedAudioTrack, PcmQueue

EMBEDDED_KEY = "sk-local-embedded"
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
    async with embedded_server() as base_url:
        print(
            "voicecli: no API key found, using the embedded local server; add a key with "
            "`voicecli auth login` or OPENAI_API_KEY",
            file=sys.stderr,
        )
        api = settings.api.model_copy(update={"base_url": base_url})
        yield settings.model_copy(update={"api": api}), EMBEDDED_KEY


@contextlib.asynccontextmanager
async def embedded_server() -> AsyncIterator[str]:
    from voicecli.server.app import running_server
    from voicecli.server.echo import EchoResponder
    from voicecli.server.http import ServerConfig

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
        "output_modalities": ["text" if text_only else "audio"],
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


def rtc_options(settings: Settings) -> RtcOptions:
    servers = tuple(
        RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
        for s in settings.network.ice_servers
    )
    return RtcOptions(
        ice_servers=servers,
        loopback=_is_loopback(settings.api.base_url),
        connect_timeout_s=settings.network.connect_timeout_s,
        liveness_timeout_s=settings.network.liveness_timeout_s,
    )


async def open_transport(
    settings: Settings,
    key: str,
    session: dict[str, Any],
    mic: MediaStreamTrack,
    on_audio: RemoteAudio | None = None,
    on_rtp_sent: Callable[[], None] | None = None,
) -> RtcTransport:
    """Credentials → signaling → a connected WebRTC transport (its session already created)."""
    source = credential_source(settings, key)
    credentials = await source.get(session)
    target = api_endpoint(settings)
    ephemeral = credentials.kind != "standard"
    signaler = Signaler(
        api_client(target, credentials.value),
        timeout_s=target.timeout_s,
        extra_headers=None if ephemeral else request_headers(target),
    )
    transport = RtcTransport(signaler, rtc_options(settings), mic, on_audio, on_rtp_sent)
    try:
        await transport.connect(None if ephemeral else session)
    except AuthError:
        source.invalidate()
        await transport.close()
        raise
    except BaseException:
        await transport.close()
        raise
    return transport


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
    transport = await open_transport(
        settings, key, session_cfg, PacedAudioTrack(mic.pull), recorder.on_audio
    )
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
    transport: RtcTransport,
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
    )
