"""Run the local realtime endpoint: in-process (tests, the embedded default) or as `serve`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from voicecli.server.http import Endpoints, ServerConfig

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class RunningServer:
    base_url: str  # http://127.0.0.1:PORT/v1
    endpoints: Endpoints

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1].split("/", 1)[0])


@contextlib.asynccontextmanager
async def running_server(
    config: ServerConfig, host: str = LOOPBACK, port: int = 0
) -> AsyncIterator[RunningServer]:
    """Serve until the block exits; then close every call and the listener."""
    async with asyncio.TaskGroup() as tasks:
        endpoints = Endpoints(config, tasks)
        app = web.Application()
        app.add_routes(endpoints.routes())
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, reuse_address=True)
            await site.start()
            yield RunningServer(f"http://{_url_host(host)}:{_bound_port(site)}/v1", endpoints)
        finally:
            await endpoints.close_all()
            await runner.cleanup()


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the asyncio server here; needed for --port 0
    assert isinstance(server, asyncio.base_events.Server)
    sockname = server.sockets[0].getsockname()
    return int(sockname[1])


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def serve_forever(
    config: ServerConfig, host: str, port: int, on_ready: Callable[[RunningServer], None]
) -> None:
    """`voicecli serve`: run until SIGINT or SIGTERM, then close every call and return."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with running_server(config, host, port) as server:
            on_ready(server)
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
