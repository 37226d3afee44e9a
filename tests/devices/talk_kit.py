"""Running the real `voicecli talk` on the private PulseAudio daemon, and listening to it.

`talk` runs as a subprocess (its own PortAudio, keys from a pseudo-terminal when asked) against
an in-process `voicecli serve`. The speaker is recorded in this process from the null sink's
monitor through our own Capture, so every recorded block carries its ADC time on
CLOCK_MONOTONIC, which the talk process's `--event-log` times share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicecli.audio.devices import Capture, resolve_device
from voicecli.audio.formats import RATE_HZ, Pcm
from voicecli.server.app import RunningServer, running_server
from voicecli.server.echo import EchoResponder
from voicecli.server.http import ServerConfig
from voicecli.server.script import ScriptedResponder, load_script
from voicecli.testing.pulse import MIC, SPEAKER, PulseAudio

KEY = "sk-talk-test-0000000000000000"


@dataclass
class Recording:
    blocks: list[tuple[float, Pcm]] = field(default_factory=list)

    def add(self, pcm: Pcm, captured_s: float) -> None:
        self.blocks.append((captured_s, pcm))

    def audio(self) -> Pcm:
        return np.concatenate([b for _, b in self.blocks]) if self.blocks else np.zeros(0, "int16")

    def start_s(self) -> float:
        return self.blocks[0][0]

    def loud_windows(self, dbfs: float, window_ms: int = 10) -> list[tuple[float, bool]]:
        """(time, louder than dbfs) per window, on the monotonic clock."""
        audio, start = self.audio().astype(np.float64), self.start_s()
        step = RATE_HZ * window_ms // 1000
        out = []
        for i in range(0, audio.size - step + 1, step):
            rms = np.sqrt(np.mean(audio[i : i + step] ** 2)) / 32768.0
            level = 20 * np.log10(rms) if rms > 0 else -200.0
            out.append((start + i / RATE_HZ, level > dbfs))
        return out


@contextlib.asynccontextmanager
async def speaker_recording() -> AsyncIterator[Recording]:
    """Record the virtual speaker (spk.monitor) with ADC times."""
    recording = Recording()
    os.environ["PULSE_SOURCE"] = f"{SPEAKER}.monitor"  # read by libpulse when the stream opens
    try:
        device = resolve_device(None, "input")
        capture = Capture(device, recording.add, lambda cause: None, asyncio.get_running_loop())
        await capture.astart()
    finally:
        os.environ["PULSE_SOURCE"] = MIC
    try:
        yield recording
    finally:
        await capture.aclose()


class Talk:
    """A `voicecli talk --plain` subprocess with an event log (and keys through a pty)."""

    def __init__(self, pulse: PulseAudio, base_url: str, tmp: Path, *args: str) -> None:
        self.events_path = tmp / "events.jsonl"
        self.stats_path = tmp / "stats.json"
        self.transcript_path = tmp / "transcript.txt"
        env = {**os.environ, **pulse.env, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": base_url}
        env.pop("VOICECLI_CONFIG", None)
        self._leader, follower = pty.openpty()  # stdin is a terminal: keys work
        command = [sys.executable, "-m", "voicecli", "talk", "--plain"]
        command += ["--event-log", str(self.events_path), "--stats-json", str(self.stats_path)]
        command += ["--transcript", str(self.transcript_path), *args]
        self.process = subprocess.Popen(
            command,
            env=env,
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(follower)

    def press(self, keys: bytes) -> None:
        os.write(self._leader, keys)

    def events(self) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        lines = self.events_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    async def wait_for(self, predicate: Any, within_s: float = 15.0) -> dict[str, Any]:
        """The first logged event that matches ``predicate`` (waits for it)."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            for event in self.events():
                if predicate(event):
                    return event
            if self.process.poll() is not None:
                raise AssertionError(f"talk exited early: {self.process.stderr.read()}")  # type: ignore[union-attr]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no matching event within {within_s} s: {self.events()[-5:]}")

    async def connected(self) -> None:
        await self.wait_for(lambda e: e["event"] == "CallInfo")

    async def finish(self, within_s: float = 10.0) -> tuple[int, str, str]:
        out, err = await asyncio.to_thread(self.process.communicate, timeout=within_s)
        os.close(self._leader)
        return self.process.returncode, out, err

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(OSError):
            os.close(self._leader)


async def play(pulse: PulseAudio, wav: Path) -> None:
    """Speak ``wav`` into the virtual microphone (real-time paced) and wait until it is done."""
    player = pulse.play_into_mic(wav)
    await asyncio.to_thread(player.wait)


def kind(event: dict[str, Any], name: str, **fields: Any) -> bool:
    return event["event"] == name and all(event.get(k) == v for k, v in fields.items())


@contextlib.asynccontextmanager
async def server(responder: object = EchoResponder) -> AsyncIterator[RunningServer]:
    """`voicecli serve` in this process (echo by default)."""
    async with running_server(ServerConfig(responder=responder)) as running:  # type: ignore[arg-type]
        yield running


@contextlib.asynccontextmanager
async def talking(
    pulse: PulseAudio, base_url: str, tmp_path: Path, *args: str
) -> AsyncIterator[Talk]:
    """A connected `voicecli talk`; killed on the way out if the test did not end it."""
    talk = Talk(pulse, base_url, tmp_path, *args)
    try:
        await talk.connected()
        yield talk
    finally:
        talk.kill()


LONG_ANSWER = """
[[step]]
on = "speech"
[[step.reply]]
say = "{text}"
""".format(text="This is a long scripted answer that keeps going for a good while. " * 3)


def long_answer(tmp_path: Path) -> object:
    """A scripted responder whose answer to speech lasts about 12 s (barge-in material)."""
    path = tmp_path / "long.toml"
    path.write_text(LONG_ANSWER)
    script = load_script(path)
    return lambda: ScriptedResponder(script)
