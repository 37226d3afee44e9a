"""Benchmark `voicecli ask` against `voicecli serve` (separate processes, loopback).

Prints medians over N runs of: process start → connected, → first audio, → exit; with no STUN
and with an unreachable STUN server configured (stun:127.0.0.1:9: loopback only, nothing
answers there). The no-STUN run is the baseline; the STUN row is also shown as a ratio.

    .venv/bin/python bench/ask.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEY = "sk-bench-ask-000000000000"
UNREACHABLE_STUN = '[[network.ice_servers]]\nurls = "stun:127.0.0.1:9"\n'


def start_server() -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "voicecli", "serve", "--port", "0", "--api-key", KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


def one_run(base_url: str, config: Path | None) -> dict[str, float]:
    env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": base_url}
    args = [sys.executable, "-m", "voicecli"]
    if config is not None:
        args += ["--config", str(config)]
    spawned = time.monotonic()
    done = subprocess.run(
        [*args, "ask", "Benchmark prompt, please answer.", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    exited = time.monotonic()
    if done.returncode != 0:
        raise RuntimeError(f"ask failed ({done.returncode}): {done.stderr.strip()}")
    marks = json.loads(done.stdout)["monotonic"]
    return {
        "connected": marks["connected"] - spawned,
        "first_audio": (marks["first_audio"] or exited) - spawned,
        "exit": exited - spawned,
    }


def series(base_url: str, config: Path | None, runs: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"connected": [], "first_audio": [], "exit": []}
    for _ in range(runs):
        for key, value in one_run(base_url, config).items():
            results[key].append(value * 1000)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    server, base_url = start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            stun = Path(tmp) / "stun.toml"
            stun.write_text(UNREACHABLE_STUN)
            baseline = series(base_url, None, runs)
            with_stun = series(base_url, stun, runs)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"voicecli ask against voicecli serve on loopback, medians of {runs} runs (ms)\n")
    print(f"{'from process start to':<24}{'no STUN':>10}{'unreachable STUN':>18}{'ratio':>8}")
    for key in ("connected", "first_audio", "exit"):
        base, stun_ms = statistics.median(baseline[key]), statistics.median(with_stun[key])
        print(f"{key:<24}{base:>10.0f}{stun_ms:>18.0f}{stun_ms / base:>8.2f}")
    added = statistics.median(with_stun["connected"]) - statistics.median(baseline["connected"])
    print(f"\nunreachable STUN adds {added:.0f} ms to connect (target < 1000 ms)")
    print(
        f"connected within {statistics.median(baseline['connected']):.0f} ms of process start "
        "(target < 500 ms)"
    )


if __name__ == "__main__":
    main()
