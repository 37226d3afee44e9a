"""`voicecli serve` as a real process: its first line, signals, and usage errors."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import aiohttp
import pytest

from voicecli.testing.offerer import Offerer

KEY = "sk-cli-test-key-0123456789"


@pytest.fixture
def serve_process() -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "voicecli", "serve", "--port", "0", "--api-key", KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process, process.stdout.readline().strip()
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_first_line_is_the_base_url(serve_process: tuple[subprocess.Popen[str], str]) -> None:
    _, base_url = serve_process
    assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")

    async def models() -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{base_url}/models", headers={"Authorization": f"Bearer {KEY}"}) as reply,
        ):
            return reply.status

    assert asyncio.run(models()) == 200


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_closes_calls_and_exits_0(
    serve_process: tuple[subprocess.Popen[str], str], signum: int
) -> None:
    process, base_url = serve_process

    async def call_then_signal() -> float:
        client = Offerer(base_url, key=KEY)
        await client.connect()
        process.send_signal(signum)
        started = time.perf_counter()
        await client.wait_closed(5)
        await client.close()
        return time.perf_counter() - started

    closed_after = asyncio.run(call_then_signal())
    assert process.wait(timeout=5) == 0
    assert closed_after < 2.0, "the live call was closed, not left to time out"
    _, stderr = process.communicate(timeout=5)
    assert "Traceback" not in stderr


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicecli", *args], capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["serve", "--fail-calls", "418"], "--fail-calls takes one of"),
        (["serve", "--responder", "scripted"], "--responder scripted needs --script"),
        (["serve", "--responder", "oracle"], "unknown responder 'oracle'"),
        (["serve", "--responder", "scripted", "--script", "/nonexistent.toml"], "nonexistent"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: list[str], says: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and says in lines[0]
    assert all(line.startswith(("error: ", "hint: ")) for line in lines)
