"""Doctor network pieces: ICE URLs, virtual interfaces, the gathering verdict, STUN, DNS."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from voicecli.config import IceServer
from voicecli.doctor.network import (
    STUN_TIMEOUT_S,
    Candidate,
    Gathered,
    IceUrl,
    Target,
    dns,
    ice_gathering,
    interface_kind,
    judge_gathering,
    parse_ice_url,
    udp_egress,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("stun:stun.l.google.com:19302", IceUrl("stun", "stun.l.google.com", 19302, "udp")),
        ("stun:stun.example.org", IceUrl("stun", "stun.example.org", 3478, "udp")),
        ("turn:turn.example.org?transport=tcp", IceUrl("turn", "turn.example.org", 3478, "tcp")),
        ("turns:turn.example.org:443", IceUrl("turns", "turn.example.org", 443, "tcp")),
        ("stun:[2001:db8::1]:3478", IceUrl("stun", "2001:db8::1", 3478, "udp")),
    ],
)
def test_ice_urls_parse(url: str, expected: IceUrl) -> None:
    assert parse_ice_url(url) == expected


def test_a_non_ice_url_is_refused() -> None:
    with pytest.raises(ValueError, match="not a STUN/TURN URL"):
        parse_ice_url("https://stun.example.org")


@pytest.mark.parametrize(
    ("name", "address", "kind"),
    [
        ("docker0", None, "containers"),
        ("br-3f2a9c", None, "containers"),
        ("veth12ab", None, "containers"),
        ("wg0", None, "VPN"),
        ("tun0", None, "VPN"),
        ("tailscale0", None, "VPN"),
        ("eth1", "100.101.102.103", "VPN"),  # Tailscale's CGNAT range, whatever the name
        ("vEthernet (WSL)", None, "WSL/Hyper-V"),
        ("eth0", "192.168.1.20", None),
        ("wlan0", None, None),
    ],
)
def test_virtual_interfaces_are_named(name: str, address: str | None, kind: str | None) -> None:
    assert interface_kind(name, address) == kind


def _host(interface: str, base: str) -> Candidate:
    return Candidate("host", interface, base)


def test_only_host_candidates_is_ok_and_counts_them_per_interface() -> None:
    baseline = Gathered(
        "no server",
        0.004,
        [_host("eth0", "192.168.1.20"), _host("eth0", "fd00::2"), _host("docker0", "172.17.0.1")],
        None,
    )
    finding = judge_gathering([baseline], loopback=False)
    assert finding.status == "ok"
    assert "2 host on eth0" in finding.measured and "1 host on docker0" in finding.measured
    assert finding.data["virtual_interfaces"] == {"docker0": "containers"}


def test_an_interface_without_stun_answer_is_named_as_slowing_gathering() -> None:
    eth0, wg0 = _host("eth0", "192.168.1.20"), _host("wg0", "10.8.0.2")
    with_stun = Gathered(
        "stun:stun.example.org:3478",
        0.81,
        [eth0, wg0, Candidate("srflx", "eth0", "192.168.1.20")],
        "srflx",
    )
    finding = judge_gathering([Gathered("no server", 0.002, [eth0, wg0], None), with_stun], False)
    assert finding.status == "warn"
    assert finding.hint and "wg0 (VPN) got no STUN answer" in finding.hint


def test_a_server_that_adds_nothing_warns_and_names_it() -> None:
    eth0 = _host("eth0", "192.168.1.20")
    runs = [
        Gathered("no server", 0.002, [eth0], None),
        Gathered("turn:turn.example.org:3478", 0.8, [eth0], "relay"),
    ]
    finding = judge_gathering(runs, loopback=False)
    assert finding.status == "warn"
    assert finding.hint and finding.hint.startswith("turn:turn.example.org:3478 added no candidate")


def test_no_interface_at_all_fails_unless_the_endpoint_is_local() -> None:
    runs = [Gathered("no server", 0.001, [], None)]
    assert judge_gathering(runs, loopback=False).status == "fail"
    assert judge_gathering(runs, loopback=True).status == "ok"


async def test_real_gathering_without_servers_is_quick() -> None:
    finding = await ice_gathering([], loopback=False)
    assert finding.status in ("ok", "warn", "fail")
    runs = finding.data["runs"]
    assert runs[0]["server"] == "no server" and runs[0]["seconds"] < 0.5


async def test_udp_egress_is_skipped_without_a_stun_server() -> None:
    finding = await udp_egress([IceServer(urls=["turn:turn.example.org"])])
    assert finding.status == "skip"


async def test_an_unreachable_stun_server_fails_within_its_time_box() -> None:
    started = time.monotonic()
    finding = await udp_egress([IceServer(urls=["stun:127.0.0.1:9"])])
    assert time.monotonic() - started < STUN_TIMEOUT_S + 0.5
    assert finding.status == "fail"
    assert "stun:127.0.0.1:9" in finding.measured and "UDP" in (finding.hint or "")


async def test_a_stun_server_that_answers_is_ok() -> None:
    server = await _tiny_stun_server()
    try:
        port = server.get_extra_info("sockname")[1]
        finding = await udp_egress([IceServer(urls=[f"stun:127.0.0.1:{port}"])])
    finally:
        server.close()
    assert finding.status == "ok", finding.measured
    assert f"stun:127.0.0.1:{port}: answered in" in finding.measured


async def _tiny_stun_server() -> asyncio.DatagramTransport:
    """Answers every binding request with the sender's address (what a STUN server does)."""
    from aioice import stun

    class Server(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            request = stun.parse_message(data)
            reply = stun.Message(
                message_method=stun.Method.BINDING,
                message_class=stun.Class.RESPONSE,
                transaction_id=request.transaction_id,
            )
            reply.attributes["XOR-MAPPED-ADDRESS"] = addr
            self.transport.sendto(bytes(reply), addr)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Server, local_addr=("127.0.0.1", 0))
    return transport


async def test_dns_of_an_address_needs_no_lookup_and_a_bad_name_fails_with_a_hint() -> None:
    assert (await dns("http://127.0.0.1:8080/v1", None)).status == "ok"
    finding = await dns("https://no-such-host.invalid/v1", "no key yet")
    assert finding.status == "fail"
    assert "no-such-host.invalid" in finding.measured
    assert finding.hint and "(no key yet)" in finding.hint


def test_target_of_a_base_url() -> None:
    assert Target.of("https://api.openai.com/v1") == Target(
        "https", "api.openai.com", 443, "/v1/models"
    )
    assert Target.of("http://127.0.0.1:8080/openai/v1/").models_path == "/openai/v1/models"
