"""Benchmark `voicecli serve` on loopback: connect latency, and CPU/RSS with concurrent calls.

Run: ``.venv/bin/python bench/serve_connect.py [--runs 20] [--calls 20] [--seconds 15]
[--json PATH]`` (``make bench``). Everything stays on 127.0.0.1 and the script stops by itself.

What it measures, all in one run (project rule: medians over repeats plus ratios against a
baseline measured in the same run, printed as a table):

1. Connect: ``--runs`` sequential calls of a plain aiortc client (voicecli.testing.Offerer)
   against `voicecli serve` in a separate process: offer → ``connected`` and offer →
   ``session.created``. Baseline: two plain aiortc peers in this process, no HTTP and no server
   logic: offer → ``connected`` and offer → data channel ``open``.
2. Load: server CPU (utime+stime of the server process from /proc) and RSS with no call, one
   call and ``--calls`` concurrent calls, each streaming speech-like audio (tone bursts and
   silence) so the server's VAD starts echo turns and the server sends audio back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import resource
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import aiortc
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection

from voicecli.audio.dsp import silence, tone
from voicecli.rtc import tuning
from voicecli.server.responders import RATE_HZ, Pcm
from voicecli.testing.offerer import Offerer

API_KEY = "sk-bench-local-0000000000"
LOOPBACK_PREFIX = "http://127.0.0.1:"
TARGET_MEDIAN_MS = 100.0
STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 15.0
ECHO_GRACE_S = 5.0  # after the window, at most this long for the last turns to finish
POLL_S = 0.05
REALTIME_MIN = 0.95  # downlink seconds of audio per second: below this a call fell behind
SETTLE_S = 1.0  # after closing calls, before the next measurement
BURST_MS = 600
BURST_HZ = (220.0, 330.0, 440.0, 550.0, 660.0, 770.0)
# The session each load call asks for: the default server VAD, but without barge-in. With the
# default interrupt_response=true, a 600 ms burst every 1.5 s starts the next user turn while
# the previous echo (300 ms padding + 600 ms burst + 500 ms trailing silence = 1.4 s of audio)
# is still playing, so every echo would be cut short and none would reach
# output_audio_buffer.stopped. Without barge-in each echo plays in full and the downlink carries
# audio about 93 % of the time: the heavier, and more telling, load.
LOAD_SESSION: dict[str, Any] = {
    "type": "realtime",
    "audio": {
        "input": {
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 500,
                "create_response": True,
                "interrupt_response": False,
            }
        }
    },
}


# Statistics.


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def p95(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile (of 20 values: the 19th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else math.nan


# The server process.


@dataclass
class Server:
    process: asyncio.subprocess.Process
    base_url: str
    stderr: IO[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid


async def start_server(stderr: IO[bytes]) -> Server:
    """`voicecli serve --port 0` in a child process; its first stdout line is the base URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voicecli", "serve", "--host", "127.0.0.1", "--port", "0",
        "--api-key", API_KEY,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=stderr,
    )  # fmt: skip
    server = Server(process, "", stderr)
    try:
        assert process.stdout is not None
        async with asyncio.timeout(STARTUP_TIMEOUT_S):
            line = (await process.stdout.readline()).decode().strip()
    except BaseException:
        await stop_server(server)
        raise
    if not line.startswith(LOOPBACK_PREFIX):
        await stop_server(server)
        raise RuntimeError(f"voicecli serve did not print a loopback base URL: {line!r}")
    server.base_url = line
    return server


async def stop_server(server: Server) -> int:
    """SIGTERM, then wait; SIGKILL (reported as a negative exit code) only if it hangs."""
    process = server.process
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode


def stderr_tail(stderr: IO[bytes], lines: int = 15) -> str:
    stderr.flush()
    stderr.seek(0)
    return "\n".join(stderr.read().decode(errors="replace").splitlines()[-lines:])


# Process accounting (Linux /proc; see proc(5)).


def _stat_fields(path: str) -> list[str]:
    text = Path(path).read_text()
    return text[text.rindex(")") + 2 :].split()  # the name may hold spaces; field 3 onwards


def proc_cpu_s(pid: int, tid: int | None = None) -> float:
    """utime + stime so far (fields 14, 15): of every thread, or of thread ``tid`` only."""
    fields = _stat_fields(f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_runqueue_s(pid: int, tid: int) -> float:
    """Time thread ``tid`` spent runnable but waiting for a CPU (schedstat field 2, in ns)."""
    try:
        return int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return math.nan  # a kernel without schedstats


def proc_mib(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024  # kB
    return math.nan


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs so far; idle and iowait count as not busy."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])  # user..steal; guest time is already inside user
    return total - values[3] - values[4], total


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuMark:
    wall_s: float
    server_s: float
    loop_s: float  # the server's main thread: its event loop
    loop_wait_s: float
    client_s: float
    machine: tuple[int, int]

    @classmethod
    def now(cls, pid: int) -> CpuMark:
        return cls(time.perf_counter(), proc_cpu_s(pid), proc_cpu_s(pid, pid),
                   thread_runqueue_s(pid, pid), self_cpu_s(), machine_ticks())  # fmt: skip


@dataclass
class Usage:
    """CPU between two marks, each in % of one core (so up to 100 × cores for the machine)."""

    wall_s: float
    server: float
    loop: float
    loop_wait: float
    client: float
    machine: float

    @classmethod
    def between(cls, begin: CpuMark, end: CpuMark) -> Usage:
        wall = end.wall_s - begin.wall_s
        busy, total = (e - b for e, b in zip(end.machine, begin.machine, strict=True))
        cores = os.cpu_count() or 1

        def pct(a: float, b: float) -> float:
            return 100 * (b - a) / wall

        return cls(wall, pct(begin.server_s, end.server_s), pct(begin.loop_s, end.loop_s),
                   pct(begin.loop_wait_s, end.loop_wait_s), pct(begin.client_s, end.client_s),
                   100 * cores * busy / total if total else math.nan)  # fmt: skip

    @property
    def others(self) -> float:
        """Machine CPU used by neither the server nor this bench (other work on the machine)."""
        return self.machine - self.server - self.client


# Connect timing.


@dataclass
class ConnectSample:
    connected_ms: float
    ready_ms: float  # serve: session.created; baseline: data channel open


async def serve_connect_once(base_url: str) -> ConnectSample:
    client = Offerer(base_url, key=API_KEY)
    try:
        await client.connect(timeout_s=CONNECT_TIMEOUT_S)
        return _offerer_sample(client)
    finally:
        await client.close()


def _offerer_sample(client: Offerer) -> ConnectSample:
    timings = client.timings
    if timings.connected_s is None or timings.session_created_s is None:
        raise RuntimeError("session.created came but the connection never reported 'connected'")
    return ConnectSample(
        connected_ms=(timings.connected_s - timings.offer_s) * 1000,
        ready_ms=(timings.session_created_s - timings.offer_s) * 1000,
    )


async def baseline_connect_once() -> ConnectSample:
    """Two plain aiortc peers in this process: no HTTP, no server logic, same ICE setup."""
    tuning.install()
    offerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    answerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    channel = offerer.createDataChannel("oai-events")
    offerer.addTransceiver("audio", direction="sendrecv")
    stamps: dict[str, float] = {}
    done = asyncio.Event()

    def stamp(name: str) -> None:
        stamps.setdefault(name, time.perf_counter())
        if {"connected", "open"} <= stamps.keys():
            done.set()

    offerer.on("connectionstatechange", lambda: _stamp_connected(offerer, stamp))
    channel.on("open", lambda: stamp("open"))
    try:
        start = time.perf_counter()
        await _exchange_in_process(offerer, answerer)
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await done.wait()
        return ConnectSample((stamps["connected"] - start) * 1000, (stamps["open"] - start) * 1000)
    finally:
        await offerer.close()
        await answerer.close()


def _stamp_connected(pc: RTCPeerConnection, stamp: Callable[[str], None]) -> None:
    if pc.connectionState == "connected":
        stamp("connected")


async def _exchange_in_process(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    with tuning.loopback_ice():
        await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    with tuning.loopback_ice():
        await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


@dataclass
class ConnectSeries:
    warmup: list[ConnectSample]
    runs: list[ConnectSample]

    def connected(self) -> list[float]:
        return [s.connected_ms for s in self.runs]

    def ready(self) -> list[float]:
        return [s.ready_ms for s in self.runs]


async def connect_series(
    once: Callable[[], Awaitable[ConnectSample]], runs: int, warmup: int
) -> ConnectSeries:
    series = ConnectSeries([], [])
    for index in range(warmup + runs):
        sample = await once()
        (series.warmup if index < warmup else series.runs).append(sample)
        await asyncio.sleep(0.05)  # let the closed call's teardown finish on both sides
    return series


# Load: calls streaming speech-like audio.


def speech_pattern(seconds: float, gap_ms: int, first: int) -> Pcm:
    """Whole 600 ms tone bursts (changing pitch) ``gap_ms`` apart, then silence: ``seconds``."""
    parts: list[Pcm] = []
    for index in range(first, first + bursts_in(seconds, gap_ms)):
        parts += [tone(BURST_HZ[index % len(BURST_HZ)], BURST_MS), silence(gap_ms)]
    pcm = np.concatenate(parts) if parts else silence(0)
    target = round(seconds * RATE_HZ)
    return np.concatenate([pcm, silence(max(0, target - pcm.size) * 1000 / RATE_HZ)])[:target]


def bursts_in(seconds: float, gap_ms: int) -> int:
    """Whole bursts that fit in a window of ``seconds``."""
    room_ms = seconds * 1000 - BURST_MS
    return 0 if room_ms < 0 else int(room_ms // (BURST_MS + gap_ms)) + 1


@dataclass
class CallResult:
    turns_detected: int  # input_audio_buffer.speech_stopped events
    echoes_started: int  # output_audio_buffer.started
    echoes_done: int  # output_audio_buffer.stopped
    echoes_cut: int  # output_audio_buffer.cleared
    downlink_realtime: float  # seconds of audio received per second of window
    schema_problems: int


@dataclass
class LoadSample:
    label: str
    calls: int
    usage: Usage
    rss_mib: float
    connected: int = 0
    connect_errors: list[str] = field(default_factory=list)
    connect_ready_ms: list[float] = field(default_factory=list)
    bursts_sent: int = 0
    results: list[CallResult] = field(default_factory=list)

    @property
    def per_call_pct(self) -> float:
        return self.usage.server / self.calls if self.calls else math.nan


async def measure_idle(server: Server, seconds: float, label: str) -> LoadSample:
    begin = CpuMark.now(server.pid)
    await asyncio.sleep(seconds)
    usage = Usage.between(begin, CpuMark.now(server.pid))
    return LoadSample(label, 0, usage, proc_mib(server.pid))


async def connect_all(base_url: str, calls: int) -> tuple[list[Offerer], list[str]]:
    """``calls`` clients connecting at once; the connected ones and the errors of the rest."""
    clients = [Offerer(base_url, key=API_KEY, session=LOAD_SESSION) for _ in range(calls)]
    outcomes = await asyncio.gather(
        *(c.connect(timeout_s=CONNECT_TIMEOUT_S) for c in clients), return_exceptions=True
    )
    errors = [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]
    failed = [c for c, o in zip(clients, outcomes, strict=True) if isinstance(o, BaseException)]
    await asyncio.gather(*(c.close() for c in failed))
    return [c for c in clients if c not in failed], errors


async def measure_load(server: Server, calls: int, seconds: float, gap_ms: int) -> LoadSample:
    clients, errors = await connect_all(server.base_url, calls)
    try:
        begin = CpuMark.now(server.pid)
        for number, client in enumerate(clients):
            client.mic.push(speech_pattern(seconds, gap_ms, first=number))
        await asyncio.sleep(seconds)
        end = CpuMark.now(server.pid)
        rss = proc_mib(server.pid)
        await drain(clients, bursts_in(seconds, gap_ms))
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    label = f"{calls} call{'s' * (calls != 1)}"
    sample = LoadSample(label, calls, Usage.between(begin, end), rss, len(clients), errors)
    sample.bursts_sent = bursts_in(seconds, gap_ms)
    sample.connect_ready_ms = [_offerer_sample(c).ready_ms for c in clients]
    sample.results = [call_result(c, begin.wall_s, end.wall_s) for c in clients]
    return sample


async def drain(clients: list[Offerer], bursts: int) -> None:
    """After the window: let every call finish its last turns, bounded by ECHO_GRACE_S.

    A call is drained when the server has detected a turn for every burst and every echo that
    started has finished or been cut. Polled: the Offerer offers no wait on a condition.
    """
    for _ in range(round(ECHO_GRACE_S / POLL_S)):
        if all(drained(c, bursts) for c in clients):
            return
        await asyncio.sleep(POLL_S)


def drained(client: Offerer, bursts: int) -> bool:
    types = client.types()
    started = types.count("output_audio_buffer.started")
    ended = types.count("output_audio_buffer.stopped") + types.count("output_audio_buffer.cleared")
    return types.count("input_audio_buffer.speech_stopped") >= bursts and ended >= started


def call_result(client: Offerer, start_s: float, end_s: float) -> CallResult:
    types = client.types()
    received = sum(pcm.size for at, pcm in client.audio_in if start_s <= at < end_s)
    return CallResult(
        turns_detected=types.count("input_audio_buffer.speech_stopped"),
        echoes_started=types.count("output_audio_buffer.started"),
        echoes_done=types.count("output_audio_buffer.stopped"),
        echoes_cut=types.count("output_audio_buffer.cleared"),
        downlink_realtime=received / RATE_HZ / (end_s - start_s),
        schema_problems=len(client.problems),
    )


# Output.


@dataclass
class Report:
    runs: int
    serve: ConnectSeries
    baseline: ConnectSeries
    idle: LoadSample
    one: LoadSample
    many: LoadSample
    idle_after: LoadSample
    exit_code: int | None = None
    server_stderr_tail: str = ""


def fmt(value: float, unit: str = "", digits: int = 1) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f}{unit}"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain text, first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def connect_rows(report: Report) -> list[list[str]]:
    serve, base = report.serve, report.baseline

    def row(name: str, values: list[float]) -> list[str]:
        return [name, fmt(median(values), " ms"), fmt(p95(values), " ms"), fmt(min(values), " ms"),
                fmt(max(values), " ms")]  # fmt: skip

    def ratio_row(name: str, a: list[float], b: list[float]) -> list[str]:
        return [name, fmt(ratio(median(a), median(b)), "×", 2), fmt(ratio(p95(a), p95(b)), "×", 2),
                "", ""]  # fmt: skip

    return [
        row("serve     offer → connected", serve.connected()),
        row("serve     offer → session.created", serve.ready()),
        row("baseline  offer → connected (2 aiortc peers)", base.connected()),
        row("baseline  offer → data channel open", base.ready()),
        ratio_row("ratio     connected: serve / baseline", serve.connected(), base.connected()),
        ratio_row("ratio     session.created / channel open", serve.ready(), base.ready()),
    ]


def load_rows(report: Report) -> list[list[str]]:
    samples = (report.idle, report.one, report.many, report.idle_after)

    def row(name: str, cell: Callable[[LoadSample], str]) -> list[str]:
        return [name, *(cell(s) for s in samples)]

    def calls(cell: Callable[[LoadSample], str]) -> Callable[[LoadSample], str]:
        return lambda s: cell(s) if s.calls else ""

    return [
        row("window", lambda s: fmt(s.usage.wall_s, " s")),
        row("server CPU", lambda s: pct(s.usage.server)),
        row("  per call", calls(lambda s: pct(s.per_call_pct))),
        row("  event-loop thread on a CPU", lambda s: pct(s.usage.loop)),
        row("  event-loop thread waiting for a CPU", lambda s: pct(s.usage.loop_wait)),
        row("server RSS", lambda s: fmt(s.rss_mib, " MiB")),
        row("bench (client) CPU", lambda s: pct(s.usage.client)),
        row(
            f"machine CPU, all processes (of {100 * (os.cpu_count() or 1)} %)",
            lambda s: pct(s.usage.machine),
        ),  # fmt: skip
        row("  others: other processes, kernel", lambda s: pct(s.usage.others)),
        row("calls connected", calls(lambda s: f"{s.connected}/{s.calls}")),
        row("calls with ≥1 finished echo turn", calls(lambda s: f"{echoed(s)}/{s.calls}")),
        row(
            "turns detected / bursts sent", calls(lambda s: f"{turns(s)}/{s.bursts_sent * s.calls}")
        ),
        row("echoes started / finished / cut", calls(echo_counts)),
        row("downlink audio s per s: min / median", calls(downlink)),
        row(
            "off-schema server events",
            calls(lambda s: str(sum(r.schema_problems for r in s.results))),
        ),
    ]


def pct(value: float) -> str:
    return fmt(value, " %")


def echoed(sample: LoadSample) -> int:
    return sum(r.echoes_done > 0 for r in sample.results)


def turns(sample: LoadSample) -> int:
    return sum(r.turns_detected for r in sample.results)


def echo_counts(sample: LoadSample) -> str:
    results = sample.results
    started, done = sum(r.echoes_started for r in results), sum(r.echoes_done for r in results)
    return f"{started} / {done} / {sum(r.echoes_cut for r in results)}"


def downlink(sample: LoadSample) -> str:
    values = [r.downlink_realtime for r in sample.results]
    return f"{fmt(min(values, default=math.nan), '', 2)} / {fmt(median(values), '', 2)}"


def ratio_lines(report: Report) -> list[str]:
    one, many = report.one, report.many
    rss_per_call = (many.rss_mib - report.idle.rss_mib) / many.calls
    return [
        f"ratio per-call server CPU, {many.calls} calls / 1 call: "
        f"{fmt(ratio(many.per_call_pct, one.per_call_pct), '×', 2)} "
        "(1.00× = linear; below 1 with downlink < 1.00 means the calls got less than real time)",
        f"server RSS growth: {fmt(rss_per_call, ' MiB')} per call "
        f"({fmt(report.idle.rss_mib, ' MiB')} idle → {fmt(many.rss_mib, ' MiB')} with "
        f"{many.calls} calls; {fmt(report.idle_after.rss_mib, ' MiB')} after they closed)",
    ]


def check_lines(report: Report) -> list[str]:
    many, ready = report.many, median(report.serve.ready())
    realtime = min((r.downlink_realtime for r in many.results), default=math.nan)
    return [
        f"median offer → session.created < {TARGET_MEDIAN_MS:.0f} ms (informational): "
        f"{verdict(ready < TARGET_MEDIAN_MS)} ({fmt(ready, ' ms')})",
        f"{many.calls} concurrent connects: {verdict(many.connected == many.calls)} "
        f"({many.connected}/{many.calls}; offer → session.created median "
        f"{fmt(median(many.connect_ready_ms), ' ms')}, max "
        f"{fmt(max(many.connect_ready_ms, default=math.nan), ' ms')})",
        *(f"  connect error: {e}" for e in many.connect_errors),
        f"{many.calls} calls each finished ≥1 echo turn: {verdict(echoed(many) == many.calls)} "
        f"({echoed(many)}/{many.calls})",
        f"{many.calls} calls kept real time (downlink ≥ 0.95 s per s on every call): "
        f"{verdict(realtime >= REALTIME_MIN)} (min {fmt(realtime, '', 2)})",
        f"server exit code after SIGTERM is 0: {verdict(report.exit_code == 0)} "
        f"({report.exit_code})",
    ]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def render(report: Report, args: argparse.Namespace) -> str:
    serve_warm = ", ".join(fmt(s.ready_ms, " ms") for s in report.serve.warmup)
    base_warm = ", ".join(fmt(s.ready_ms, " ms") for s in report.baseline.warmup)
    connect = render_table(("connect, sequential", "median", "p95", "min", "max"),
                           connect_rows(report))  # fmt: skip
    load = render_table(("load", *(s.label for s in (report.idle, report.one, report.many,
                                                      report.idle_after))),
                        load_rows(report))  # fmt: skip
    return "\n".join([
        f"voicecli serve bench: Python {platform.python_version()}, aiortc {aiortc.__version__}, "
        f"{os.cpu_count()} cores; {report.runs} runs each side; p95 is nearest-rank",
        f"warm-up (not counted): {args.warmup} run(s) each side; serve offer → session.created "
        f"[{serve_warm}], baseline offer → channel open [{base_warm}]",
        "", connect, "",
        f"load: every call streams {BURST_MS} ms tone bursts + {args.gap_ms} ms silence "
        "(server VAD, barge-in off); CPU is utime+stime over the window in % of one core",
        "", load, "", *ratio_lines(report), "", *check_lines(report),
    ])  # fmt: skip


# Main.


async def run(args: argparse.Namespace) -> Report:
    with tempfile.TemporaryFile() as stderr:
        server = await start_server(stderr)
        try:
            report = await measure(server, args)
        finally:
            code = await stop_server(server)
        report.exit_code = code
        report.server_stderr_tail = stderr_tail(stderr)
    return report


async def measure(server: Server, args: argparse.Namespace) -> Report:
    say(f"server {server.base_url} (pid {server.pid}); idle {args.idle_seconds} s")
    await asyncio.sleep(SETTLE_S)  # let start-up finish
    idle = await measure_idle(server, args.idle_seconds, "idle")
    say(f"connect: {args.warmup}+{args.runs} serve runs, {args.warmup}+{args.runs} baseline runs")
    serve = await connect_series(
        lambda: serve_connect_once(server.base_url), args.runs, args.warmup
    )
    baseline = await connect_series(baseline_connect_once, args.runs, args.warmup)
    say(f"load: 1 call for {args.seconds} s")
    one = await measure_load(server, 1, args.seconds, args.gap_ms)
    await asyncio.sleep(SETTLE_S)
    say(f"load: {args.calls} calls for {args.seconds} s")
    many = await measure_load(server, args.calls, args.seconds, args.gap_ms)
    await asyncio.sleep(SETTLE_S)
    idle_after = await measure_idle(server, args.idle_seconds, "idle after")
    return Report(args.runs, serve, baseline, idle, one, many, idle_after)


def say(text: str) -> None:
    print(f"… {text}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20, help="sequential connects (each side)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted runs first (each side)")
    parser.add_argument("--calls", type=int, default=20, help="concurrent calls in the load test")
    parser.add_argument("--seconds", type=float, default=15.0, help="load window per level")
    parser.add_argument("--idle-seconds", type=float, default=3.0, help="idle CPU window")
    parser.add_argument("--gap-ms", type=int, default=900, help="silence between bursts")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.calls < 1 or args.seconds <= 0 or args.idle_seconds <= 0:
        parser.error("--runs and --calls must be >= 1, --seconds and --idle-seconds > 0")
    return args


def to_json(report: Report, args: argparse.Namespace) -> dict[str, Any]:
    serve, base = report.serve, report.baseline
    summary = {
        "serve_connected_ms": {"median": median(serve.connected()), "p95": p95(serve.connected())},
        "serve_session_created_ms": {"median": median(serve.ready()), "p95": p95(serve.ready())},
        "baseline_connected_ms": {"median": median(base.connected()), "p95": p95(base.connected())},
        "baseline_channel_open_ms": {"median": median(base.ready()), "p95": p95(base.ready())},
        "per_call_server_cpu_pct": {s.label: s.per_call_pct for s in (report.one, report.many)},
        "per_call_cpu_ratio_many_over_one": ratio(
            report.many.per_call_pct, report.one.per_call_pct
        ),
    }
    options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    raw: dict[str, Any] = finite({"args": options, "summary": summary, "raw": asdict(report)})
    return raw


def finite(value: Any) -> Any:
    """``value`` with NaN (no data) as null, so the file is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = asyncio.run(run(args))
    print(render(report, args))
    if report.exit_code != 0:
        print(f"server stderr (tail):\n{report.server_stderr_tail}")
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(report, args), indent=2) + "\n")
    return 0 if report.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
