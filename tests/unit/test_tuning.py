"""voicecli.rtc.tuning: guards for the aiortc/aioice internals we patch, and what each patch does.

If one of these fails after an aiortc/aioice/PyAV upgrade, the patch in tuning.py no longer does
what it says: fix the patch (and the pin in pyproject) before anything else.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import re

import aioice
import aioice.ice
import pytest
from aiortc import RTCPeerConnection
from aiortc.codecs import CODECS, depayload
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtcpByePacket, RtcpRrPacket, RtpPacket

from voicecli.rtc import tuning
from voicecli.rtc.tuning import PassThroughJitterBuffer


@pytest.fixture(autouse=True)
def _installed() -> None:
    tuning.install()


# Loopback host candidates.


def test_aioice_host_address_function_is_still_the_gathering_seam() -> None:
    original = tuning._original_host_addresses
    assert original.__module__ == "aioice.ice"
    assert original.__name__ == "get_host_addresses"
    assert list(inspect.signature(original).parameters) == ["use_ipv4", "use_ipv6"]
    # gather_candidates looks the function up as a module global at call time, so replacing
    # aioice.ice.get_host_addresses reaches it.
    assert "get_host_addresses(" in inspect.getsource(aioice.ice.Connection.gather_candidates)


def test_install_replaces_the_module_global() -> None:
    assert aioice.ice.get_host_addresses is not tuning._original_host_addresses
    assert list(inspect.signature(aioice.ice.get_host_addresses).parameters) == [
        "use_ipv4",
        "use_ipv6",
    ]


def test_loopback_only_inside_the_context() -> None:
    normal = tuning._original_host_addresses(True, True)
    with tuning.loopback_ice():
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]
        with tuning.loopback_ice(enabled=False):
            assert aioice.ice.get_host_addresses(True, True) == normal
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]
    outside = aioice.ice.get_host_addresses(True, True)
    assert outside == normal
    assert "127.0.0.1" not in outside


async def test_loopback_scope_is_per_task() -> None:
    entered = asyncio.Event()
    looked = asyncio.Event()
    seen: dict[str, list[str]] = {}

    async def inside() -> None:
        with tuning.loopback_ice():
            entered.set()
            await looked.wait()  # the other task looks while this one is inside
            seen["inside"] = aioice.ice.get_host_addresses(True, False)

    async def outside() -> None:
        await entered.wait()
        seen["outside"] = aioice.ice.get_host_addresses(True, False)
        looked.set()

    await asyncio.wait_for(asyncio.gather(inside(), outside()), timeout=5)
    assert seen["inside"] == ["127.0.0.1"]
    assert "127.0.0.1" not in seen["outside"]
    assert seen["outside"] == tuning._original_host_addresses(True, False)


async def test_gathering_inside_the_context_yields_the_loopback_host_candidate() -> None:
    with tuning.loopback_ice():
        connection = aioice.Connection(ice_controlling=True)
        try:
            await connection.gather_candidates()
            hosts = [c.host for c in connection.local_candidates]
        finally:
            await connection.close()
    assert hosts == ["127.0.0.1"]


# Opus offer fmtp.


def opus_codec() -> object:
    matches = [c for c in CODECS["audio"] if c.mimeType.lower() == "audio/opus"]
    assert len(matches) == 1
    return matches[0]


def test_opus_codec_parameters_advertise_minptime_and_fec() -> None:
    codec = opus_codec()
    assert codec.parameters["minptime"] == 10  # type: ignore[attr-defined]
    assert codec.parameters["useinbandfec"] == 1  # type: ignore[attr-defined]


async def test_offer_carries_the_opus_fmtp_line() -> None:
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio")
        offer = await pc.createOffer()
    finally:
        await pc.close()
    rtpmap = re.search(r"^a=rtpmap:(\d+) opus/48000/2\r?$", offer.sdp, re.MULTILINE)
    assert rtpmap is not None
    payload_type = rtpmap.group(1)
    fmtp = re.search(rf"^a=fmtp:{payload_type} (.*?)\r?$", offer.sdp, re.MULTILINE)
    assert fmtp is not None, offer.sdp
    params = dict(p.split("=", 1) for p in fmtp.group(1).split(";"))
    assert params["minptime"] == "10"
    assert params["useinbandfec"] == "1"


def test_install_is_idempotent() -> None:
    fmtp = dict(opus_codec().parameters)  # type: ignore[attr-defined]
    tuning.install()
    tuning._tune_opus_offer()  # even bypassing the installed flag, the fmtp is the same
    assert opus_codec().parameters == fmtp  # type: ignore[attr-defined]


# Receive jitter buffer.


def test_receiver_still_has_the_name_mangled_jitter_buffer() -> None:
    source = inspect.getsource(RTCRtpReceiver)
    # The receiver fills packet._data before handing the packet to the jitter buffer, and only
    # calls .add() on it: that is all PassThroughJitterBuffer implements.
    assert "packet._data = depayload(" in source
    assert "self.__jitter_buffer.add(packet)" in source
    assert set(re.findall(r"self\.__jitter_buffer\.(\w+)", source)) == {"add"}
    assert list(inspect.signature(JitterFrame).parameters) == ["data", "timestamp"]


async def test_use_passthrough_jitter_buffer_replaces_the_receivers() -> None:
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("audio").receiver
        assert isinstance(receiver, RTCRtpReceiver)
        before = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        assert type(before).__module__ == "aiortc.jitterbuffer"
        tuning.use_passthrough_jitter_buffer(receiver)
        after = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        assert isinstance(after, PassThroughJitterBuffer)
    finally:
        await pc.close()


def test_use_passthrough_jitter_buffer_refuses_an_unknown_receiver() -> None:
    with pytest.raises(RuntimeError, match="aiortc changed"):
        tuning.use_passthrough_jitter_buffer(object())


def packet(seq: int, payload: bytes | None = None) -> RtpPacket:
    """An RTP packet as the receiver hands it on: with `_data` set by depayload."""
    data = payload if payload is not None else f"opus-{seq}".encode()
    rtp = RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq * 960, payload=data)
    rtp._data = depayload(opus_codec(), rtp.payload)  # type: ignore[arg-type, attr-defined]
    return rtp


def test_in_order_packets_come_out_at_once() -> None:
    buffer = PassThroughJitterBuffer()
    for seq in range(10, 20):
        pli, frame = buffer.add(packet(seq))
        assert pli is False
        assert isinstance(frame, JitterFrame)
        assert frame.data == f"opus-{seq}".encode()
        assert frame.timestamp == seq * 960


def test_a_gap_does_not_hold_back_later_packets() -> None:
    buffer = PassThroughJitterBuffer()
    assert buffer.add(packet(1))[1] is not None
    _, frame = buffer.add(packet(4))  # 2 and 3 lost
    assert frame is not None
    assert frame.timestamp == 4 * 960


def test_late_and_duplicate_packets_are_dropped() -> None:
    buffer = PassThroughJitterBuffer()
    for seq in (1, 2, 3, 5):
        assert buffer.add(packet(seq))[1] is not None
    assert buffer.add(packet(4)) == (False, None)  # late: 5 already went
    assert buffer.add(packet(5)) == (False, None)  # duplicate
    assert buffer.add(packet(2)) == (False, None)
    assert buffer.add(packet(6))[1] is not None


def test_sequence_numbers_wrap() -> None:
    buffer = PassThroughJitterBuffer()
    for seq in (65534, 65535, 0, 1):
        _, frame = buffer.add(packet(seq))
        assert frame is not None, seq
    assert buffer.add(packet(65535)) == (False, None)  # late, from before the wrap
    assert buffer.add(packet(0)) == (False, None)  # duplicate after the wrap
    assert buffer.add(packet(2))[1] is not None


def test_an_empty_payload_is_passed_on() -> None:
    buffer = PassThroughJitterBuffer()
    _, frame = buffer.add(packet(7, b""))
    assert frame is not None
    assert frame.data == b""


# Outgoing RTP loss.


class FakeDtlsTransport:
    """Our seam: drop_outgoing_rtp wraps the transport's async `_send_rtp`."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append(data)


def rtp_bytes(seq: int) -> bytes:
    return RtpPacket(
        payload_type=96, marker=seq % 2, sequence_number=seq, timestamp=seq, payload=b"x"
    ).serialize()


RTCP = [bytes(RtcpByePacket(sources=[1])), bytes(RtcpRrPacket(ssrc=1))]


async def send_all(transport: FakeDtlsTransport, rtp_count: int) -> None:
    for seq in range(rtp_count):
        await transport._send_rtp(rtp_bytes(seq))
        await transport._send_rtp(RTCP[seq % 2])


async def test_drops_about_the_asked_share_of_rtp_and_never_rtcp() -> None:
    transport = FakeDtlsTransport()
    tuning.drop_outgoing_rtp(transport, 0.25, random.Random(7))
    await send_all(transport, 2000)
    rtp = [d for d in transport.sent if d not in RTCP]
    rtcp = [d for d in transport.sent if d in RTCP]
    assert len(rtcp) == 2000
    assert 0.70 < len(rtp) / 2000 < 0.80


async def test_drop_everything_still_sends_rtcp() -> None:
    transport = FakeDtlsTransport()
    tuning.drop_outgoing_rtp(transport, 1.0, random.Random(7))
    await send_all(transport, 100)
    assert len(transport.sent) == 100
    assert all(d in RTCP for d in transport.sent)


@pytest.mark.parametrize("fraction", [0.0, -0.5])
async def test_no_loss_leaves_the_transport_alone(fraction: float) -> None:
    transport = FakeDtlsTransport()
    send = transport._send_rtp
    tuning.drop_outgoing_rtp(transport, fraction, random.Random(7))
    assert transport._send_rtp == send
    await send_all(transport, 100)
    assert len(transport.sent) == 200


def test_gathering_is_time_boxed() -> None:
    # aioice's STUN wait is the `timeout` default of get_component_candidates (5 s).
    params = inspect.signature(aioice.ice.Connection.get_component_candidates).parameters
    assert list(params)[1:4] == ["component", "addresses", "timeout"]
    tuning.install()
    assert aioice.ice.Connection.get_component_candidates.__defaults__ == (tuning.GATHER_TIMEOUT_S,)


async def test_watch_counts_rtp_after_it_is_sent_and_ignores_rtcp() -> None:
    transport = FakeDtlsTransport()
    seen: list[int] = []
    tuning.watch_outgoing_rtp(transport, lambda: seen.append(len(transport.sent)))
    await send_all(transport, 10)
    assert len(transport.sent) == 20  # everything still goes out
    assert seen == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]  # once per RTP packet, after it left


def test_aiortc_dtls_transport_still_sends_rtp_through_send_rtp() -> None:
    """drop_outgoing_rtp and watch_outgoing_rtp wrap this private coroutine method."""
    import inspect

    from aiortc.rtcdtlstransport import RTCDtlsTransport

    send = getattr(RTCDtlsTransport, "_send_rtp", None)
    assert send is not None and inspect.iscoroutinefunction(send), "aiortc changed _send_rtp"
