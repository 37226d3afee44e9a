"""Our WebRTC client accepts a REAL answer from OpenAI's `POST /v1/realtime/calls`.

The answer (tests/fixtures/openai-answer-ga-2026-04.sdp, a copy of
../shared/fixtures/; see its README there) was returned to an aiortc offer in April 2026. It is
set as the remote description of voicecli's own RtcTransport offer, through a signaler that
returns it instead of calling the service.

SAFETY: its candidates are public addresses, and no traffic may leave this machine. Every
candidate is rewritten to 127.0.0.1 first (UDP ones to sockets this test listens on and never
answers, TCP ones to a listener of ours), the rewrite is checked before use, our side gathers
127.0.0.1 only (RtcOptions.loopback, no ICE servers), and the connection is closed right after
the checks. So the ICE checks it starts go to our own loopback sockets, and stall there.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aioice import stun
from aiortc.sdp import SessionDescription

from voicecli.errors import NetworkError
from voicecli.rtc.connection import RtcOptions, RtcTransport, Stage
from voicecli.rtc.signaling import Answer
from voicecli.rtc.tracks import PacedAudioTrack, PcmQueue

pytestmark = pytest.mark.integration

NAME = "openai-answer-ga-2026-04.sdp"
LOCAL_COPY = Path(__file__).parents[1] / "fixtures" / NAME
SHARED = Path(__file__).parents[3] / "shared" / "fixtures" / NAME
ANSWER_UFRAG = "hcFtUn/u7/3oNQFw"
LOOPBACK = "127.0.0.1"


def fixture_text() -> str:
    """The copy that travels with the repo, else the shared original."""
    return (LOCAL_COPY if LOCAL_COPY.exists() else SHARED).read_text(encoding="utf-8")


@dataclass
class FakeService:
    """Loopback stand-ins for the answer's candidates: UDP sockets and one TCP listener.

    They record what reaches them and never reply, so ICE stays in its checks.
    """

    udp_ports: list[int] = field(default_factory=list)
    tcp_port: int = 0
    datagrams: list[bytes] = field(default_factory=list)
    tcp_connections: int = 0


class _Recorder(asyncio.DatagramProtocol):
    def __init__(self, into: list[bytes]) -> None:
        self.into = into

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.into.append(data)


@contextlib.asynccontextmanager
async def fake_service(udp_sockets: int) -> AsyncIterator[FakeService]:
    service = FakeService()
    loop = asyncio.get_running_loop()
    transports: list[asyncio.DatagramTransport] = []

    def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        service.tcp_connections += 1
        writer.close()

    server = await asyncio.start_server(on_tcp, LOOPBACK, 0)
    try:
        service.tcp_port = server.sockets[0].getsockname()[1]
        for _ in range(udp_sockets):
            transport, _protocol = await loop.create_datagram_endpoint(
                lambda: _Recorder(service.datagrams), local_addr=(LOOPBACK, 0)
            )
            transports.append(transport)
            service.udp_ports.append(transport.get_extra_info("sockname")[1])
        yield service
    finally:
        for transport in transports:
            transport.close()
        server.close()
        await server.wait_closed()


def to_loopback(sdp: str, service: FakeService, newline: str) -> str:
    """Every candidate moved to our loopback sockets (TCP ones stay TCP); ``newline`` endings."""
    udp_ports = iter(service.udp_ports)
    lines = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            # a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ …
            parts = line.split(" ")
            parts[4] = LOOPBACK
            parts[5] = str(next(udp_ports) if parts[2].lower() == "udp" else service.tcp_port)
            line = " ".join(parts)
        lines.append(line)
    rewritten = newline.join(lines) + newline
    for line in rewritten.splitlines():  # the guard: nothing but loopback may be dialled
        if line.startswith("a=candidate:"):
            assert ipaddress.ip_address(line.split(" ")[4]).is_loopback, line
    return rewritten


class FixtureSignaler:
    """Our Signaler's seam: returns the given answer; records the offer and the hangup."""

    host = "fixture.invalid"

    def __init__(self, answer_sdp: str) -> None:
        self.answer_sdp = answer_sdp
        self.offers: list[str] = []
        self.hangups: list[str] = []

    async def exchange(self, offer_sdp: str, session: dict[str, Any] | None) -> Answer:
        self.offers.append(offer_sdp)
        return Answer(self.answer_sdp, "rtc_fixture")

    async def hangup(self, call_id: str) -> None:
        self.hangups.append(call_id)

    async def aclose(self) -> None:
        self.closed = True


def candidates(sdp: str) -> list[list[str]]:
    return [line.split(" ") for line in sdp.splitlines() if line.startswith("a=candidate:")]


def test_the_copy_in_tests_fixtures_is_the_shared_original() -> None:
    if not SHARED.exists():
        pytest.skip("../shared/fixtures is not here (the repo travelled alone)")
    assert LOCAL_COPY.read_bytes() == SHARED.read_bytes()


def test_the_fixture_is_what_these_tests_assume() -> None:
    text = fixture_text()
    found = candidates(text)
    assert {c[2] for c in found} == {"udp", "tcp"}
    assert len([c for c in found if c[2] == "udp"]) == 3
    assert "a=ice-lite" in text.splitlines()
    assert f"a=ice-ufrag:{ANSWER_UFRAG}" in text.splitlines()


@pytest.mark.parametrize("newline", ["\r\n", "\n"], ids=["crlf-as-on-the-wire", "lf-as-stored"])
async def test_the_real_answer_negotiates_opus_and_the_data_channel(newline: str) -> None:
    async with fake_service(udp_sockets=3) as service:
        answer = to_loopback(fixture_text(), service, newline)
        signaler = FixtureSignaler(answer)
        mic = PacedAudioTrack(PcmQueue().pull)
        options = RtcOptions(ice_servers=(), loopback=True, connect_timeout_s=0.6)
        transport = RtcTransport(signaler, options, mic)  # type: ignore[arg-type]
        try:
            # The answer is accepted (no SDP error); with nobody answering the checks, connect
            # stalls at ICE and says so.
            with pytest.raises(NetworkError) as stalled:
                await transport.connect(None)
            pc = transport.pc
            (transceiver,) = pc.getTransceivers()
            # aiortc 1.16 has no RTCRtpSender.getParameters(): the negotiated list lives here.
            negotiated = transceiver._codecs
            ice = transceiver.sender.transport.transport
            remote = SessionDescription.parse(pc.remoteDescription.sdp)
            tcp_connections = service.tcp_connections
            datagrams = list(service.datagrams)
        finally:
            await transport.close()

    assert stalled.value.message == (
        f"could not connect within 0.6 s: stalled at {Stage.ICE.value}"
    )
    # Opus first: it is what we send, with the answer's payload type.
    opus = negotiated[0]
    assert (opus.mimeType.lower(), opus.clockRate, opus.channels) == ("audio/opus", 48000, 2)
    assert opus.payloadType == 96
    assert transceiver.currentDirection == "sendrecv"
    assert transceiver.receiver.track is not None and transceiver.receiver.track.kind == "audio"
    # The fmtp line is parsed: in-band FEC on, 10 ms minimum packet time.
    assert remote.media[0].rtp.codecs[0].parameters == {"minptime": 10, "useinbandfec": 1}
    assert opus.parameters.get("useinbandfec") == 1
    # The data-channel m-line is accepted and BUNDLEd onto the audio's ICE transport.
    assert pc.sctp is not None
    assert pc.sctp.transport.transport is ice
    assert [m.kind for m in remote.media] == ["audio", "application"]
    # ice-lite is recognised. aiortc hands it to aioice (Connection.remote_is_lite) when the
    # checks start; that flag is not public, so the parsed description is where we look.
    assert all(m.ice is not None and m.ice.iceLite for m in remote.media)
    # Checks went to the answer's UDP candidates (STUN binding requests carrying the answer's
    # ufrag), and never to its TCP ones: aioice has no ICE-TCP, and must not try.
    requests = [stun.parse_message(d) for d in datagrams]
    assert requests, "no ICE check reached the answer's UDP candidates"
    assert all(r.message_method == stun.Method.BINDING for r in requests)
    assert all(r.message_class == stun.Class.REQUEST for r in requests)
    assert all(str(r.attributes["USERNAME"]).startswith(ANSWER_UFRAG + ":") for r in requests)
    assert tcp_connections == 0
    # Closed right after: hung up, and the peer connection is gone.
    assert signaler.hangups == ["rtc_fixture"]
    assert pc.connectionState == "closed"


async def test_our_offer_is_one_the_service_answered() -> None:
    """The offer carries what the real answer relied on: audio, the channel, BUNDLE, Opus."""
    async with fake_service(udp_sockets=3) as service:
        signaler = FixtureSignaler(to_loopback(fixture_text(), service, "\r\n"))
        options = RtcOptions(ice_servers=(), loopback=True, connect_timeout_s=0.3)
        transport = RtcTransport(signaler, options, PacedAudioTrack(PcmQueue().pull))  # type: ignore[arg-type]
        try:
            with pytest.raises(NetworkError):
                await transport.connect(None)
        finally:
            await transport.close()
    (offer_sdp,) = signaler.offers
    offer = SessionDescription.parse(offer_sdp)
    assert [m.kind for m in offer.media] == ["audio", "application"]
    assert offer.media[0].direction == "sendrecv"
    assert offer.media[0].rtp.codecs[0].mimeType.lower() == "audio/opus"
    assert offer.media[0].rtp.codecs[0].parameters == {"minptime": 10, "useinbandfec": 1}
    assert any(g.semantic == "BUNDLE" for g in offer.group)
    # Our side offered loopback only: nothing here may reach another machine.
    for line in candidates(offer_sdp):
        assert ipaddress.ip_address(line[4]).is_loopback
