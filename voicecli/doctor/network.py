"""Network checks: DNS and HTTP(S) reachability of the endpoint, ICE gathering, UDP via STUN.

Every step has its own short time box, so a dead endpoint is reported in a few seconds rather
than after the OS's connect timeout. Name resolution runs in a daemon thread (runner.in_thread)
for the same reason: a stuck resolver must not hold the process at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import os
import socket
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

from voicecli.config import IceServer
from voicecli.doctor.checks import Finding, fail, ok, skip, warn
from voicecli.doctor.runner import in_thread, one_line

SECTION = "network"
T = TypeVar("T")
DNS_TIMEOUT_S = 2.0
TCP_TIMEOUT_S = 2.0
TLS_TIMEOUT_S = 1.5
HTTP_TIMEOUT_S = 1.5
STUN_RETRANSMITS_S = (0.0, 0.25, 0.75)  # when to (re)send the binding request
STUN_TIMEOUT_S = 1.5
SLOW_GATHER_S = 0.5
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


# ---- the endpoint ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where the endpoint is: host, port and the path of its model list."""

    scheme: str
    host: str
    port: int
    models_path: str

    @classmethod
    def of(cls, base_url: str) -> Target:
        parts = urlsplit(base_url)
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        return cls(parts.scheme, parts.hostname or "", port, parts.path.rstrip("/") + "/models")

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _literal_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host`` (IPv4 first), resolved in a daemon thread."""
    infos = await in_thread(lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    return sorted(addresses, key=lambda a: ":" in a)


async def dns(base_url: str, no_key_note: str | None) -> Finding:
    target = Target.of(base_url)
    if not target.host:
        return fail(f"no host in {base_url!r}", "fix api.base_url (or OPENAI_BASE_URL)")
    if _literal_ip(target.host) or target.host == "localhost":
        return ok(f"{target.host} (no lookup needed)", host=target.host, addresses=[target.host])
    started = time.monotonic()
    try:
        async with asyncio.timeout(DNS_TIMEOUT_S):
            addresses = await resolve(target.host, target.port)
    except TimeoutError:
        hint = _with_note("the DNS server does not answer; check the network", no_key_note)
        return fail(f"no answer for {target.host} within {DNS_TIMEOUT_S:g} s", hint)
    except socket.gaierror as exc:
        hint = _with_note("check the network's DNS and api.base_url", no_key_note)
        return fail(f"cannot resolve {target.host}: {exc.strerror}", hint, host=target.host)
    took = time.monotonic() - started
    more = f" (+{len(addresses) - 1} more)" if len(addresses) > 1 else ""
    text = f"{target.host} → {addresses[0]}{more} in {_ms(took)}"
    return ok(text, host=target.host, addresses=addresses, seconds=round(took, 4))


def _with_note(hint: str, note: str | None) -> str:
    return f"{hint} ({note})" if note else hint


# ---- HTTP(S) reachability ----------------------------------------------------------------------


class StepFailed(Exception):
    """A reachability step failed; the message says which and why."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


async def endpoint(base_url: str, no_key_note: str | None) -> Finding:
    """TCP connect, TLS handshake (https) and the first line of ``GET {base}/models``, timed."""
    target = Target.of(base_url)
    proxy = next((name for name in PROXY_VARS if os.environ.get(name)), None)
    timings: dict[str, float] = {}
    try:
        status = await _reach(target, timings)
    except StepFailed as exc:
        hint = _with_note(exc.hint, no_key_note)
        if proxy:
            hint += f"; ${proxy} is set: the API client goes through that proxy, this check did not"
        return fail(exc.message, hint, where=target.where, timings=_rounded(timings))
    steps = ", ".join(f"{name} {_ms(s)}" for name, s in timings.items())
    text = f"{target.scheme}://{target.where}: HTTP {status}; {steps}"
    data = {"where": target.where, "status": status, "timings": _rounded(timings)}
    if status >= 500:
        return warn(text, "the endpoint answers with server errors; try again later", **data)
    return ok(text, **data)


def _rounded(timings: dict[str, float]) -> dict[str, float]:
    return {name: round(s, 4) for name, s in timings.items()}


async def _reach(target: Target, timings: dict[str, float]) -> int:
    address = await _address(target)
    reader, writer = await _timed(timings, "TCP", _tcp(target, address))
    try:
        if target.scheme == "https":
            await _timed(timings, "TLS", _tls(target, writer))
        return await _timed(timings, "HTTP", _first_line(target, reader, writer))
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 0.5)


async def _timed(timings: dict[str, float], name: str, step: Awaitable[T]) -> T:
    started = time.monotonic()
    result = await step
    timings[name] = time.monotonic() - started
    return result


async def _address(target: Target) -> str:
    if _literal_ip(target.host):
        return target.host
    try:
        async with asyncio.timeout(DNS_TIMEOUT_S):
            return (await resolve(target.host, target.port))[0]
    except (TimeoutError, socket.gaierror) as exc:
        raise StepFailed(
            f"cannot resolve {target.host}", "see the DNS row; check the network"
        ) from exc


async def _tcp(target: Target, address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        async with asyncio.timeout(TCP_TIMEOUT_S):
            return await asyncio.open_connection(address, target.port)
    except TimeoutError:
        raise StepFailed(
            f"no answer from {target.where} within {TCP_TIMEOUT_S:g} s (TCP connect)",
            "a firewall or VPN drops the traffic, or the host is down",
        ) from None
    except ConnectionRefusedError:
        raise StepFailed(
            f"connection refused at {target.where}",
            "nothing listens there: is the server running, and is api.base_url right?",
        ) from None
    except OSError as exc:
        raise StepFailed(
            f"cannot connect to {target.where}: {exc.strerror or exc}",
            "check the network connection and api.base_url",
        ) from None


async def _tls(target: Target, writer: asyncio.StreamWriter) -> None:
    context = ssl.create_default_context()
    try:
        async with asyncio.timeout(TLS_TIMEOUT_S):
            await writer.start_tls(context, server_hostname=target.host)
    except TimeoutError:
        raise StepFailed(
            f"TLS handshake with {target.where} did not finish within {TLS_TIMEOUT_S:g} s",
            "something between you and the service holds TLS (proxy, firewall)",
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise StepFailed(
            f"TLS certificate of {target.host} not trusted: {exc.verify_message}",
            "a proxy or antivirus intercepts TLS? point SSL_CERT_FILE at its CA certificate",
        ) from None
    except (ssl.SSLError, OSError) as exc:
        message = f"TLS with {target.where} failed: {one_line(str(exc))}"
        raise StepFailed(message, _TLS_HINT) from None


_TLS_HINT = "check the base URL's scheme (http/https) and any TLS-intercepting proxy"


async def _first_line(
    target: Target, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> int:
    host = f"{target.host}:{target.port}" if target.port not in (80, 443) else target.host
    request = f"GET {target.models_path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    writer.write(request.encode("ascii", "replace"))
    try:
        async with asyncio.timeout(HTTP_TIMEOUT_S):
            await writer.drain()
            line = await reader.readline()
    except TimeoutError:
        raise StepFailed(
            f"{target.where} accepted the connection but sent no HTTP answer "
            f"within {HTTP_TIMEOUT_S:g} s",
            "is api.base_url an HTTP endpoint (and the right scheme)?",
        ) from None
    except OSError as exc:
        raise StepFailed(f"{target.where} dropped the connection: {exc}", _TLS_HINT) from None
    parts = line.decode("latin-1").split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise StepFailed(f"{target.where} did not answer HTTP", _TLS_HINT)
    return int(parts[1])


# ---- ICE ---------------------------------------------------------------------------------------

# Interfaces whose candidates are useless for reaching the service and, with a STUN server,
# often get no answer (so gathering waits out its time box).
_VIRTUAL_PREFIXES = (
    (("vethernet",), "WSL/Hyper-V"),  # before "veth"
    (("tun", "tap", "wg", "ppp", "utun", "ipsec", "tailscale", "zt", "nordlynx", "proton"), "VPN"),
    (("docker", "br-", "veth", "cni", "flannel", "cali", "podman", "lxc", "lxdbr"), "containers"),
    (("virbr", "vmnet", "vboxnet"), "virtual machines"),
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # Tailscale hands out these


def interface_kind(name: str, address: str | None = None) -> str | None:
    """'VPN', 'containers', 'virtual machines' or 'WSL/Hyper-V' for a virtual interface."""
    lowered = name.lower()
    for prefixes, kind in _VIRTUAL_PREFIXES:
        if lowered.startswith(prefixes):
            return kind
    if address is not None and _in_cgnat(address):
        return "VPN"
    return None


def _in_cgnat(address: str) -> bool:
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(address) in _CGNAT
    return False


def interfaces_by_address() -> dict[str, str]:
    """IP address -> interface name, from ifaddr (what aioice itself enumerates)."""
    import ifaddr

    names: dict[str, str] = {}
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            address = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            names[address] = str(adapter.nice_name)
    return names


@dataclass(frozen=True)
class IceUrl:
    scheme: str  # stun | turn | turns
    host: str
    port: int
    transport: str  # udp | tcp

    @property
    def text(self) -> str:
        return f"{self.scheme}:{self.host}:{self.port}"


def parse_ice_url(url: str) -> IceUrl:
    """``stun:host[:port]``, ``turn:host[:port][?transport=tcp]``, ``turns:…``."""
    scheme, _, rest = url.partition(":")
    scheme = scheme.lower()
    if scheme not in ("stun", "stuns", "turn", "turns") or not rest:
        raise ValueError(f"not a STUN/TURN URL: {url!r}")
    rest, _, query = rest.partition("?")
    transport = "tcp" if "transport=tcp" in query.lower() or scheme == "turns" else "udp"
    host, port = _host_port(rest, 5349 if scheme in ("stuns", "turns") else 3478)
    return IceUrl(scheme.removesuffix("s") if scheme == "stuns" else scheme, host, port, transport)


def _host_port(text: str, default: int) -> tuple[str, int]:
    if text.startswith("["):  # [v6]:port
        host, _, tail = text[1:].partition("]")
        return host, int(tail[1:]) if tail.startswith(":") else default
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return text, default


class Candidate(NamedTuple):
    type: str  # host | srflx | relay
    interface: str  # the interface of its base address (the address itself if unknown)
    base: str  # the local address it was gathered from


@dataclass(frozen=True)
class Gathered:
    label: str
    seconds: float
    candidates: list[Candidate]
    wanted: str | None  # the candidate type this server should add (srflx / relay), if any


async def gather(url: IceUrl | None, server: IceServer | None) -> Gathered:
    """Gather candidates as aiortc would with this one server (None: host candidates only)."""
    import aioice

    from voicecli.rtc import tuning

    tuning.install()  # the same gathering time box as real calls
    connection = aioice.Connection(ice_controlling=True, **_server_kwargs(url, server))
    started = time.monotonic()
    try:
        await connection.gather_candidates()
        seconds = time.monotonic() - started
        names = interfaces_by_address()
        found = [_candidate(c, names) for c in connection.local_candidates]
    finally:
        await connection.close()
    wanted = None if url is None else ("srflx" if url.scheme == "stun" else "relay")
    return Gathered(url.text if url else "no server", seconds, found, wanted)


def _server_kwargs(url: IceUrl | None, server: IceServer | None) -> dict[str, Any]:
    if url is None or server is None:
        return {}
    if url.scheme == "stun":
        return {"stun_server": (url.host, url.port)}
    return {
        "turn_server": (url.host, url.port),
        "turn_username": server.username,
        "turn_password": server.credential,
        "turn_ssl": url.scheme == "turns",
        "turn_transport": url.transport,
    }


def _candidate(candidate: Any, names: dict[str, str]) -> Candidate:
    base = str(candidate.host if candidate.type == "host" else candidate.related_address)
    return Candidate(str(candidate.type), names.get(base, base), base)


def ice_urls(servers: Sequence[IceServer]) -> Iterator[tuple[IceUrl, IceServer]]:
    for server in servers:
        for url in server.urls:
            yield parse_ice_url(url), server


async def ice_gathering(servers: Sequence[IceServer], loopback: bool) -> Finding:
    """Host candidates per interface, and per configured server what it added, timed."""
    runs = [gather(None, None)] + [gather(url, server) for url, server in ice_urls(servers)]
    return judge_gathering(list(await asyncio.gather(*runs)), loopback)


def judge_gathering(results: list[Gathered], loopback: bool) -> Finding:
    """``results[0]`` is the run without servers; then one per configured server."""
    virtual = _virtual_interfaces(results[0])
    text = "; ".join(_describe(g) for g in results)
    if virtual:
        text += "; virtual: " + ", ".join(f"{n} ({k})" for n, k in virtual.items())
    if loopback:
        text += "; calls to the local server use 127.0.0.1 only"
    data = {"runs": [_run_data(g) for g in results], "virtual_interfaces": virtual}
    return _verdict(results, virtual, loopback, text, data)


def _virtual_interfaces(baseline: Gathered) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for c in baseline.candidates:
        kind = interface_kind(c.interface, c.base)
        if kind is not None:
            kinds[c.interface] = kind
    return kinds


def _counts(g: Gathered) -> Counter[tuple[str, str]]:
    return Counter((c.type, c.interface) for c in g.candidates)


def _describe(g: Gathered) -> str:
    per = ", ".join(f"{n} {kind} on {iface}" for (kind, iface), n in sorted(_counts(g).items()))
    return f"{g.label}: {per or 'no candidates'} in {_ms(g.seconds)}"


def _run_data(g: Gathered) -> dict[str, Any]:
    return {
        "server": g.label,
        "seconds": round(g.seconds, 4),
        "candidates": [
            {"type": t, "interface": i, "count": n} for (t, i), n in sorted(_counts(g).items())
        ],
    }


def _verdict(
    results: list[Gathered], virtual: dict[str, str], loopback: bool, text: str, data: Any
) -> Finding:
    if not results[0].candidates and not loopback:
        return fail(text, "no network interface with an address: connect to a network", **data)
    silent = [g for g in results if g.wanted and all(c.type != g.wanted for c in g.candidates)]
    if silent:
        labels = ", ".join(g.label for g in silent)
        return warn(
            text,
            f"{labels} added no candidate, so every call waits out the gathering time box; "
            "fix it or remove it from network.ice_servers (OpenAI needs none)",
            **data,
        )
    slow = _slow_interfaces(results, virtual)
    return warn(text, slow, **data) if slow else ok(text, **data)


def _slow_interfaces(results: list[Gathered], virtual: dict[str, str]) -> str | None:
    """Name the interfaces that got no STUN answer while others did (they hold gathering up)."""
    lagging: set[str] = set()
    for g in results:
        answered = {c.base for c in g.candidates if c.type == "srflx"}
        if g.wanted != "srflx" or not answered:
            continue
        asked = {c for c in g.candidates if c.type == "host" and "." in c.base}  # IPv4 only
        lagging |= {c.interface for c in asked if c.base not in answered}
    took = max(g.seconds for g in results)
    if not lagging and took < SLOW_GATHER_S:
        return None
    named = ", ".join(f"{n} ({virtual.get(n, 'interface')})" for n in sorted(lagging))
    what = f"{named} got no STUN answer" if named else f"gathering took {_ms(took)}"
    return f"{what}: that delays every call; disconnect the VPN or stop unused container networks"


# ---- UDP egress through a STUN binding ---------------------------------------------------------


class _StunClient(asyncio.DatagramProtocol):
    def __init__(self, transaction_id: bytes) -> None:
        self.transaction_id = transaction_id
        self.answer: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        from aioice import stun

        with contextlib.suppress(ValueError):
            message = stun.parse_message(data)
            if message.transaction_id == self.transaction_id and not self.answer.done():
                mapped = message.attributes.get("XOR-MAPPED-ADDRESS") or (None, None)
                self.answer.set_result((str(mapped[0]), int(mapped[1] or 0)))

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def stun_binding(url: IceUrl) -> tuple[float, str]:
    """One STUN binding over UDP: (round-trip seconds, mapped address). Raises on failure."""
    from aioice import stun

    address = (await resolve(url.host, url.port))[0]
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        lambda: _StunClient(request.transaction_id), remote_addr=(address, url.port)
    )
    started = time.monotonic()
    schedule = (*STUN_RETRANSMITS_S, STUN_TIMEOUT_S)
    try:
        for send_at, next_at in itertools.pairwise(schedule):
            transport.sendto(bytes(request))
            with contextlib.suppress(TimeoutError):
                mapped = await asyncio.wait_for(asyncio.shield(client.answer), next_at - send_at)
                return time.monotonic() - started, mapped[0]
        raise TimeoutError
    finally:
        transport.close()


async def udp_egress(servers: Sequence[IceServer]) -> Finding:
    stuns = [url for url, _ in ice_urls(servers) if url.scheme == "stun"]
    if not stuns:
        return skip("no STUN server configured (OpenAI needs none; ICE runs over UDP to it)")
    outcomes = await asyncio.gather(*(_binding_outcome(url) for url in stuns))
    text = "; ".join(line for line, _ in outcomes)
    data = {
        "servers": [
            {"server": url.text, "ok": good} for url, (_, good) in zip(stuns, outcomes, strict=True)
        ]
    }
    if all(good for _, good in outcomes):
        return ok(text, **data)
    return fail(
        text,
        "UDP looks blocked (firewall, VPN) or the server is down; calls need UDP out",
        **data,
    )


async def _binding_outcome(url: IceUrl) -> tuple[str, bool]:
    try:
        seconds, mapped = await stun_binding(url)
    except TimeoutError:
        return f"{url.text}: no answer within {STUN_TIMEOUT_S:g} s", False
    except ConnectionRefusedError:
        return f"{url.text}: port unreachable (nothing listens there)", False
    except (OSError, socket.gaierror) as exc:
        return f"{url.text}: {one_line(str(exc))}", False
    nat = "behind NAT" if not _is_local(mapped) else "no NAT"
    return f"{url.text}: answered in {_ms(seconds)} ({nat})", True


def _is_local(address: str) -> bool:
    return address in interfaces_by_address()
