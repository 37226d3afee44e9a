"""API checks: where the key comes from, whether the service takes it, and (--call) a real call.

The call goes through the product path (credentials, Signaler, RtcTransport) so its stage
timings are the ones `talk` and `ask` would see. It is built here rather than through
app.open_transport so that a failed call still reports how long each stage before it took.
With no key and no base URL configured, the call goes to an in-process local server (echo
responder): that tests this machine's WebRTC stack without billing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from voicecli.app import EMBEDDED_KEY, rtc_options, session_config
from voicecli.auth.credentials import (
    api_client,
    api_endpoint,
    credential_source,
    request_headers,
    verify_key,
)
from voicecli.auth.keys import ResolvedKey
from voicecli.config import Settings
from voicecli.doctor.checks import Finding, fail, ok, skip, warn
from voicecli.doctor.runner import one_line
from voicecli.errors import AuthError, NetworkError, VoiceCliError
from voicecli.realtime.events import event_type, user_text
from voicecli.realtime.tools import ToolRegistry
from voicecli.realtime.transport import Disconnected, LinkState, NetworkStats
from voicecli.rtc.connection import RtcTransport, Stage
from voicecli.rtc.signaling import Signaler
from voicecli.rtc.tracks import PacedAudioTrack, PcmQueue

SECTION = "api"
MODELS_TIMEOUT_S = 2.0  # the SDK's own timeout for GET /models: a dead endpoint fails fast
LARGE_MESSAGE_BYTES = 60_000  # under aiortc's default peer limit (64 KiB), 50 SCTP chunks
LARGE_REPLY_TIMEOUT_S = 5.0
_MAX_MESSAGE = re.compile(r"^a=max-message-size:(\d+)", re.MULTILINE)


@dataclass
class ApiProbe:
    """What the API checks share: settings, the key, and what the call found."""

    settings: Settings
    key: ResolvedKey | None
    call_enabled: bool = False
    call_confirmed: bool = False
    large_message: Finding | None = None
    stage_ms: dict[str, float] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return api_endpoint(self.settings).base_url

    @property
    def configured_url(self) -> bool:
        return self.settings.source("api.base_url") != "default"

    @property
    def loopback(self) -> bool:
        return rtc_options(self.settings).loopback

    @property
    def embedded(self) -> bool:
        """No key and no base URL: voicecli would use its embedded local server."""
        return self.key is None and not self.configured_url and self._mode != "token_url"

    @property
    def _mode(self) -> str:
        return self.settings.auth.mode

    def call_key(self) -> str:
        return self.key.value if self.key is not None else EMBEDDED_KEY


def needs_confirmation(probe: ApiProbe) -> bool:
    """A call to the real service opens a billed session; one to loopback does not."""
    return probe.call_enabled and not probe.embedded and not probe.loopback


# ---- the key -----------------------------------------------------------------------------------


async def key_source(probe: ApiProbe) -> Finding:
    host = urlsplit(probe.base_url).netloc
    mode = probe.settings.auth.mode
    if mode == "token_url":
        where = urlsplit(probe.settings.auth.token_url).netloc or "(auth.token_url not set)"
        return ok(f"auth.mode token_url: keys come from {where}", mode=mode)
    if probe.key is not None:
        text = f"{probe.key.masked} from {probe.key.source} (auth.mode {mode}, for {host})"
        return ok(text, source=probe.key.source, masked=probe.key.masked, mode=mode)
    if probe.embedded:
        return warn(
            "no API key: voicecli uses its embedded local server (offline, no OpenAI)",
            "to talk to OpenAI, `voicecli auth login` or set OPENAI_API_KEY",
            source=None,
            mode=mode,
        )
    if probe.loopback:
        return ok(f"no key; none needed for the local server at {host}", source=None, mode=mode)
    return fail(f"no API key for {host}", AuthError.default_hint, source=None, mode=mode)


async def key_valid(probe: ApiProbe) -> Finding:
    """``GET {base}/models`` with the key: 401 says the key is wrong, with the service's words."""
    if probe.settings.auth.mode == "token_url":
        return skip("not run: with auth.mode token_url the API key stays with your backend")
    if probe.embedded:
        return skip("not run: no key to check (the embedded local server needs none)")
    if probe.key is None and not probe.loopback:
        return skip("not run: no API key")
    quick = probe.settings.network.model_copy(update={"connect_timeout_s": MODELS_TIMEOUT_S})
    settings = probe.settings.model_copy(update={"network": quick})
    started = time.monotonic()
    try:
        count = await verify_key(settings, probe.call_key())
    except AuthError as exc:
        return fail(
            one_line(exc.message),
            "the service refused this key: check it (`voicecli auth status` shows which key is "
            "used and from where); `voicecli auth login` stores a new one",
        )
    except NetworkError as exc:
        return fail(one_line(exc.message), "see the network rows above")
    took = (time.monotonic() - started) * 1000
    host = urlsplit(probe.base_url).netloc
    return ok(f"{host} accepts the key: {count} models listed in {took:.0f} ms", models=count)


# ---- --call ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _call_settings(probe: ApiProbe) -> AsyncIterator[Settings]:
    """The settings to call with: the embedded local server's when voicecli would use it."""
    if not probe.embedded:
        yield probe.settings
        return
    from voicecli.server.app import running_server
    from voicecli.server.echo import EchoResponder
    from voicecli.server.http import ServerConfig

    async with running_server(ServerConfig(responder=EchoResponder)) as server:
        api = probe.settings.api.model_copy(update={"base_url": server.base_url})
        yield probe.settings.model_copy(update={"api": api})


async def call(probe: ApiProbe) -> Finding:
    if not probe.call_enabled:
        return skip("not run: --call makes a real call (SDP, ICE, DTLS, data channel, session)")
    if needs_confirmation(probe) and not probe.call_confirmed:
        return skip("not run: a call opens a billed session; confirm it, or add --yes")
    async with _call_settings(probe) as settings:
        return await _call(probe, settings)


async def _call(probe: ApiProbe, settings: Settings) -> Finding:
    session = session_config(settings, ToolRegistry(), manual_turns=True, text_only=True)
    source = credential_source(settings, probe.call_key())
    credentials = await source.get(session)
    target = api_endpoint(settings)
    ephemeral = credentials.kind != "standard"
    signaler = Signaler(
        api_client(target, credentials.value),
        timeout_s=target.timeout_s,
        extra_headers=None if ephemeral else request_headers(target),
    )
    mic = PacedAudioTrack(PcmQueue().pull)  # silence: RTP flows as from a quiet microphone
    began = time.monotonic()  # RtcTransport's stage times count from its creation, now
    transport = RtcTransport(signaler, rtc_options(settings), mic)
    host = urlsplit(target.base_url).netloc
    try:
        return await _connect_and_test(probe, transport, (session, ephemeral), host, began)
    finally:
        await transport.close()


async def _connect_and_test(
    probe: ApiProbe,
    transport: RtcTransport,
    offer: tuple[dict[str, Any], bool],
    host: str,
    began: float,
) -> Finding:
    session, ephemeral = offer
    try:
        await transport.connect(None if ephemeral else session)
    except VoiceCliError as exc:
        probe.stage_ms = _stage_ms(transport, time.monotonic() - began)
        text = f"{one_line(exc.message)}; {_stages_text(probe.stage_ms)}"
        return fail(text, exc.hint, stages_ms=probe.stage_ms, host=host)
    probe.stage_ms = _stage_ms(transport, time.monotonic() - began)
    probe.large_message = await large_message(transport)
    hangup_started = time.monotonic()
    await transport.close()
    probe.stage_ms["hangup"] = round((time.monotonic() - hangup_started) * 1000, 1)
    text = f"{host}, call {transport.call_id}: {_stages_text(probe.stage_ms)}"
    return ok(text, stages_ms=probe.stage_ms, host=host, call_id=transport.call_id)


def _stage_ms(transport: RtcTransport, until_s: float) -> dict[str, float]:
    """Each reached stage's duration: until the next stage began, the last until ``until_s``.

    Gathering is not in stage_times: it starts with the transport (time 0).
    """
    reached = [(Stage.GATHERING, 0.0), *sorted(transport.stage_times.items(), key=_at)]
    ends = [at for _, at in reached[1:]] + [until_s]
    pairs = zip(reached, ends, strict=True)
    return {stage.value: round((end - at) * 1000, 1) for (stage, at), end in pairs}


def _at(item: tuple[Stage, float]) -> float:
    return item[1]


def _stages_text(stages: dict[str, float]) -> str:
    return ", ".join(f"{name} {ms:.0f} ms" for name, ms in stages.items()) or "no stage reached"


# ---- the large data-channel message ------------------------------------------------------------


async def large_message(transport: RtcTransport) -> Finding:
    """Send a ~60 KB conversation.item.create; the channel must carry it and stay open.

    A path MTU under what SCTP assumes (VPNs, IPv6 tunnels, 1280-byte links) stalls the data
    channel silently once a message needs many chunks; small events still get through.
    """
    limit = _max_message_size(transport)
    text = "voicecli doctor checks that large events cross the data channel. "
    filler = text * (LARGE_MESSAGE_BYTES // len(text))
    event = user_text(filler)
    size = len(filler) + 200
    started = time.monotonic()
    try:
        transport.send(event)
    except VoiceCliError as exc:
        return fail(one_line(exc.message), "the service limits event size", max_message_size=limit)
    outcome = await _reply_to_large(transport)
    took = (time.monotonic() - started) * 1000
    limit_text = f"peer max-message-size {limit}" if limit else "no max-message-size in answer"
    data = {"bytes": size, "max_message_size": limit, "ms": round(took, 1)}
    if outcome is None:
        return ok(f"{size // 1000} KB event acknowledged in {took:.0f} ms; {limit_text}", **data)
    return fail(
        f"{size // 1000} KB event: {outcome}; {limit_text}",
        "large events stall: a VPN or tunnel with a small MTU? try without it",
        **data,
    )


def _max_message_size(transport: RtcTransport) -> int | None:
    remote = transport.pc.remoteDescription
    found = _MAX_MESSAGE.search(remote.sdp if remote is not None else "")
    return int(found.group(1)) if found else None


async def _reply_to_large(transport: RtcTransport) -> str | None:
    """None when the service acknowledged the item; else what happened instead."""
    try:
        async with asyncio.timeout(LARGE_REPLY_TIMEOUT_S):
            async for event in transport.events():
                if isinstance(event, Disconnected):
                    return f"the link closed: {event.cause}"
                if isinstance(event, LinkState | NetworkStats):
                    continue
                kind = event_type(event)
                if kind in ("conversation.item.added", "conversation.item.created"):
                    return None
                if kind == "error":
                    error = getattr(event, "error", None)
                    return f"the service answered error: {getattr(error, 'message', '')}"
    except TimeoutError:
        return f"no acknowledgement within {LARGE_REPLY_TIMEOUT_S:g} s (the channel stalled)"
    return "the link closed"


async def large_message_row(probe: ApiProbe) -> Finding:
    """The network row for the large-message test, which runs inside --call."""
    if probe.large_message is not None:
        return probe.large_message
    if not probe.call_enabled:
        return skip("not run: part of --call")
    return skip("not run: the call did not connect")
