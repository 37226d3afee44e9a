"""Benchmark issue 8's resilience against `voicecli serve` (in-process, loopback).

- Reconnect: a talk Link (no audio devices; voicecli.testing.linkrig) is connected, and its call
  is dropped N times by the server (`Call.drop()`, the `--drop-*` fault switches' action) a
  little after audio flows. For each drop: drop → detected (the Link's Reconnecting) and
  detected → audio flowing again (Reconnected.gap_s: the first remote audio frame of the new
  call over WebRTC; connected and replayed over the WebSocket). Modes: `close` (the server
  closes the peer connection: noticed through the data channel / peer connection state),
  `silent` (the server stops sending anything: noticed by the liveness check), `websocket`
  (talk over the WebSocket transport, the server closes the socket).
- Fallback: `--transport auto` against a server whose SDP answer has only an unreachable ICE
  candidate (UDP blocked): connect start → WebSocket session ready, and the WebSocket's own
  share (handshake → session.updated).

    .venv/bin/python bench/reconnect.py [--drops 20] [--modes close,silent,websocket]

Client and server share one process and event loop (one core), as in the integration tests;
the real service adds its network round trips to every connect.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass
from typing import Any

from voicecli.app import Dial, Media, connect, session_config
from voicecli.config import Settings, load_settings
from voicecli.realtime.tools import registry_from_settings
from voicecli.rtc.tracks import PacedAudioTrack, PcmQueue
from voicecli.server.app import RunningServer, running_server
from voicecli.server.echo import EchoResponder
from voicecli.server.faults import ServeFaults
from voicecli.server.http import ServerConfig
from voicecli.talk.events import Reconnected, Reconnecting
from voicecli.testing.linkrig import LinkRig

KEY = "sk-bench-reconnect-0000000000"
SETTLE_S = 0.5  # audio flows this long on each call before it is dropped
TARGET_P95_S = 3.0


@dataclass
class Drops:
    mode: str
    detect_s: list[float]
    gap_s: list[float]


def settings_for(base_url: str, **flags: Any) -> Settings:
    return load_settings(None, {}, {"api.base_url": base_url, "api.api_key": KEY, **flags})


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


async def drops(mode: str, count: int) -> Drops:
    faults = ServeFaults(drop_silently=mode == "silent")
    flags: dict[str, Any] = {"network.liveness_timeout_s": 2.0}
    if mode == "websocket":
        flags["network.transport"] = "websocket"
    async with running_server(ServerConfig(responder=EchoResponder, faults=faults)) as server:
        rig = LinkRig(settings_for(server.base_url, **flags), KEY)
        result = Drops(mode, [], [])
        async with rig.running():
            for n in range(count):
                await asyncio.sleep(SETTLE_S)
                dropped = time.monotonic()
                _the_call(server).drop()
                await rig.heard.wait_for(lambda n=n: len(rig.heard.of(Reconnected)) > n, 15)
                lost = [t for t, e in rig.heard.events if isinstance(e, Reconnecting)][-1]
                result.detect_s.append(lost - dropped)
                result.gap_s.append(rig.heard.of(Reconnected)[-1].gap_s)
    return result


def _the_call(server: RunningServer) -> Any:
    calls = list(server.endpoints.calls.values())
    return calls[-1]  # the newest: an old call may still be closing


async def fallback(runs: int) -> tuple[list[float], list[float]]:
    """auto with UDP blocked: (connect start → ready, the WebSocket's own connect time)."""
    totals, sockets = [], []
    faults = ServeFaults(unreachable_ice=True)
    async with running_server(ServerConfig(responder=EchoResponder, faults=faults)) as server:
        settings = settings_for(server.base_url)
        tools = registry_from_settings(settings)
        config = session_config(settings, tools, manual_turns=False, text_only=False)
        mic = PcmQueue()  # silence
        media = Media(lambda: PacedAudioTrack(mic.pull))
        for _ in range(runs):
            started = time.monotonic()
            transport = await connect(Dial.of(settings, KEY, config), media)
            totals.append(time.monotonic() - started)
            assert transport.kind == "websocket", transport.kind
            sockets.append(getattr(transport, "connect_s", None) or 0.0)
            await transport.close()
    return totals, sockets


def row(name: str, values: list[float], note: str = "") -> str:
    med, high = statistics.median(values) * 1000, p95(values) * 1000
    return f"| {name:<40} | {len(values):>3} | {med:>8.0f} | {high:>8.0f} | {note}"


async def main(count: int, modes: list[str], fallback_runs: int) -> None:
    print("| measurement                              |   n | p50 (ms) | p95 (ms) |")
    print("|------------------------------------------|-----|----------|----------|")
    for mode in modes:
        result = await drops(mode, count)
        ok = "ok" if p95(result.gap_s) <= TARGET_P95_S else "OVER TARGET"
        print(row(f"{mode}: drop → detected", result.detect_s))
        print(row(f"{mode}: detected → audio flowing", result.gap_s, f"target p95 ≤ 3 s: {ok}"))
    totals, sockets = await fallback(fallback_runs)
    limit = settings_for("http://127.0.0.1:1/v1").network.connect_timeout_s
    print(row("fallback: connect → WebSocket ready", totals, f"connect timeout {limit:g} s"))
    print(row("fallback: WebSocket's own connect", sockets))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=20)
    parser.add_argument("--modes", default="close,silent,websocket")
    parser.add_argument("--fallback-runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.drops, args.modes.split(","), args.fallback_runs))
