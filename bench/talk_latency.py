"""Benchmark `voicecli talk` on PulseAudio virtual devices against `voicecli serve` (echo).

A private PulseAudio daemon gives the real PortAudio path a virtual mic and speaker
(voicecli.testing.pulse); clicks (1 ms, every 250 ms) are played into the mic for the whole
run, the echo responder answers each turn, and RTP flows both ways all the time (silence
frames included), so this is full-duplex audio. Reported per configuration:

- client-added latency, from talk's own probes on every 20 ms frame (`--stats-json`):
  capture → RTP sent (PortAudio ADC time → the packet leaving) and RTP received → speaker
  (arrival → PortAudio DAC time), p50 and p95, and their p95 sum as mouth-to-ear;
- CPU % of one core (utime + stime over the call, after WARMUP_S of start-up and connect)
  and peak RSS (VmHWM) of the talk process;
- playout underruns;
- RSS over time (`--minutes 10` for the flatness check: RSS at 1 min vs at the end).

`--plain` is the baseline; the dashboard (under a pseudo-terminal) is shown as a ratio to it.

    .venv/bin/python bench/talk_latency.py [--seconds 60] [--minutes 10] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

from voicecli.testing.pulse import PulseAudio

KEY = "sk-bench-talk-000000000000"
CLICK_EVERY_S = 0.25
# CPU is measured over the call, not start-up: imports (~1 s of CPU) and the connect (DTLS,
# session set-up) are over well within this, and the call then runs for --seconds more.
WARMUP_S = 5.0
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def click_wav(path: Path, seconds: float) -> Path:
    pcm = np.zeros(int(seconds * 48000), dtype=np.int16)
    for start in range(0, pcm.size, int(CLICK_EVERY_S * 48000)):
        pcm[start : start + 48] = 20000  # 1 ms
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes(pcm.tobytes())
    return path


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "voicecli", "serve", "--port", "0", "--api-key", KEY],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime, stime


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def drain(fd: int) -> None:
    """Read the dashboard's output so the pseudo-terminal never blocks it."""
    while True:
        try:
            if not os.read(fd, 65536):
                return
        except OSError:
            return


def one_run(pulse: PulseAudio, base_url: str, seconds: float, dashboard: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="talk-bench-"))
    stats_path = tmp / "stats.json"
    env = {**os.environ, **pulse.env, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": base_url}
    command = [sys.executable, "-m", "voicecli", "talk", "--duration", str(seconds + WARMUP_S)]
    command += ["--stats-json", str(stats_path)] + ([] if dashboard else ["--plain"])
    leader, follower = pty.openpty()
    talk = subprocess.Popen(
        command,
        env={**env, "COLUMNS": "100", "LINES": "30"},
        stdin=follower,
        stdout=follower if dashboard else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(follower)
    threading.Thread(target=drain, args=(leader,), daemon=True).start()
    player = pulse.play_into_mic(click_wav(tmp / "clicks.wav", seconds + WARMUP_S + 10))
    rss: list[tuple[float, int]] = []
    started, cpu_start, peak = time.monotonic(), None, 0
    while talk.poll() is None:
        time.sleep(1.0)
        try:
            if cpu_start is None and time.monotonic() - started >= WARMUP_S:
                cpu_start = (time.monotonic(), cpu_s(talk.pid))  # after start-up and connect
            resident = status_kb(talk.pid, "VmRSS")  # 0 once it is a zombie
            if resident:
                rss.append((time.monotonic() - started, resident))
            cpu_end = (time.monotonic(), cpu_s(talk.pid))
            peak = max(peak, status_kb(talk.pid, "VmHWM"))  # 0 once it is a zombie
        except (FileNotFoundError, ProcessLookupError):
            break
    player.kill()
    player.wait()
    os.close(leader)
    stats = json.loads(stats_path.read_text())
    assert cpu_start is not None
    return {
        "stats": stats["audio_path"],
        "cpu_pct": 100 * (cpu_end[1] - cpu_start[1]) / (cpu_end[0] - cpu_start[0]),
        "peak_rss_mb": peak / 1024,
        "rss": rss,
        "underruns": stats["audio_path"]["playout_underruns"],
    }


def row(name: str, runs: list[dict[str, Any]], base: dict[str, float] | None) -> dict[str, float]:
    def med(get: Any) -> float:
        return statistics.median(get(r) for r in runs)

    figures = {
        "cap50": med(lambda r: r["stats"]["capture_to_rtp_ms"]["p50"]),
        "cap95": med(lambda r: r["stats"]["capture_to_rtp_ms"]["p95"]),
        "spk50": med(lambda r: r["stats"]["rtp_to_speaker_ms"]["p50"]),
        "spk95": med(lambda r: r["stats"]["rtp_to_speaker_ms"]["p95"]),
        "cpu": med(lambda r: r["cpu_pct"]),
        "rss": med(lambda r: r["peak_rss_mb"]),
        "under": med(lambda r: r["underruns"]),
    }
    ratio = f"{figures['cpu'] / base['cpu']:.2f}" if base else "1.00 (baseline)"
    print(
        f"| {name} | {figures['cap50']:.1f} / {figures['cap95']:.1f} "
        f"| {figures['spk50']:.1f} / {figures['spk95']:.1f} "
        f"| {figures['cap95'] + figures['spk95']:.1f} | {figures['cpu']:.1f} | {ratio} "
        f"| {figures['rss']:.0f} | {figures['under']:.0f} |"
    )
    return figures


def report_flatness(run: dict[str, Any]) -> None:
    samples = run["rss"]
    first = next((kb for t, kb in samples if t >= 60), samples[0][1])
    last = samples[-1][1]
    print(
        f"\nRSS after 1 min {first / 1024:.0f} MB, after {samples[-1][0] / 60:.1f} min "
        f"{last / 1024:.0f} MB (growth {100 * (last - first) / first:+.1f} %)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3, help="0: only the long run")
    parser.add_argument("--minutes", type=float, default=0.0, help="also a long plain run")
    args = parser.parse_args()
    with PulseAudio() as pulse:
        server, base_url = start_server({**os.environ, **pulse.env})
        try:
            if args.repeats:
                table(pulse, base_url, args)
            if args.minutes:
                report_flatness(one_run(pulse, base_url, args.minutes * 60, False))
        finally:
            server.terminate()
            server.wait()


def table(pulse: PulseAudio, base_url: str, args: argparse.Namespace) -> None:
    plain = [one_run(pulse, base_url, args.seconds, False) for _ in range(args.repeats)]
    live = [one_run(pulse, base_url, args.seconds, True) for _ in range(args.repeats)]
    print(f"\n`voicecli talk`, {args.seconds:g} s full duplex, medians of {args.repeats}")
    print(
        "| config | capture→RTP p50/p95 ms | RTP→speaker p50/p95 ms | mouth-to-ear p95 ms "
        "| CPU % of a core | CPU ratio | peak RSS MB | underruns |"
    )
    print("|---|---|---|---|---|---|---|---|")
    base = row("--plain", plain, None)
    row("dashboard", live, base)


if __name__ == "__main__":
    main()
