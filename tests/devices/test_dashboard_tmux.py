"""The real `voicecli talk` dashboard in a real terminal (tmux), on PulseAudio virtual devices.

tmux runs talk in a 100×30 pane; `capture-pane` is what a user would see. Speech played into
the virtual mic makes one scripted turn; keys go in with `send-keys`.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicecli.server.app import running_server
from voicecli.server.http import ServerConfig
from voicecli.server.script import ScriptedResponder, load_script
from voicecli.testing.pulse import PulseAudio

from .talk_kit import KEY, play

pytestmark = [pytest.mark.device, pytest.mark.usefixtures("tmux_installed")]

SCRIPT = """
[[step]]
on = "speech"
transcript = "hello from the tmux test"
[[step.reply]]
say = "Hello back from the scripted assistant."
"""


@pytest.fixture
def tmux() -> Iterator[str]:
    """A private tmux server (its own socket), killed afterwards."""
    socket = f"voicecli-test-{uuid.uuid4().hex[:8]}"
    yield socket
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)


def tmux_run(socket: str, *args: str) -> str:
    done = subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, check=True)
    return done.stdout


def screen(socket: str) -> str:
    return tmux_run(socket, "capture-pane", "-p", "-t", "talk")


async def shows(socket: str, *texts: str, within_s: float = 15.0) -> str:
    """Wait until the screen holds every text (case-insensitive regular expressions)."""
    deadline = time.monotonic() + within_s
    while True:
        shown = screen(socket)
        if all(re.search(t, shown, re.IGNORECASE | re.MULTILINE) for t in texts):
            return shown
        if time.monotonic() > deadline:
            raise AssertionError(f"the screen never showed {texts}:\n{shown}")
        await asyncio.sleep(0.1)


async def appears(path: Path, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    for _ in iter(lambda: path.exists() or time.monotonic() > deadline, True):
        await asyncio.sleep(0.02)


def launcher(tmp_path: Path, pulse: PulseAudio, base_url: str) -> Path:
    """A shell script for the pane: talk with our environment, then its exit code on disk."""
    env = {**pulse.env, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": base_url}
    exports = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items())
    python = shlex.quote(sys.executable)
    rc = shlex.quote(str(tmp_path / "rc"))
    script = tmp_path / "run.sh"
    script.write_text(
        f"{exports}\nunset NO_COLOR VOICECLI_CONFIG\n"
        f"{python} -m voicecli talk\necho $? > {rc}\nsleep 30\n"
    )
    return script


async def test_dashboard_shows_the_turn_mute_and_quits_cleanly(
    pulse: PulseAudio, speech: Path, tmp_path: Path, tmux: str
) -> None:
    (tmp_path / "script.toml").write_text(SCRIPT)
    script = load_script(tmp_path / "script.toml")
    config = ServerConfig(responder=lambda: ScriptedResponder(script))
    async with running_server(config) as server:
        run = launcher(tmp_path, pulse, server.base_url)
        tmux_run(tmux, "new-session", "-d", "-s", "talk", "-x", "100", "-y", "30", f"sh {run}")
        await shows(tmux, "connected")
        await play(pulse, speech)
        turn = await shows(tmux, "hello from the tmux test", "Hello back from the scripted")
        # The turn's own latency figures (they follow its first played audio): "last" gets
        # numbers where it showed dashes, and the header counts one turn.
        await shows(tmux, r"\bn=1\b", r"\blast\s+\d+")
        tmux_run(tmux, "send-keys", "-t", "talk", "m")
        muted = await shows(tmux, "MUTED")
        tmux_run(tmux, "send-keys", "-t", "talk", "q")
        pressed = time.monotonic()
        rc_file = tmp_path / "rc"
        await appears(rc_file, within_s=5.0)
        took = time.monotonic() - pressed
        after = screen(tmux)
    assert "connected" in turn.lower()
    assert "MUTED" in muted
    assert rc_file.read_text().strip() == "0"
    assert took < 1.0, f"q took {took:.2f} s"
    # The terminal is restored: the dashboard (alternate screen) is gone, the summary is shown.
    assert "MUTED" not in after
    assert "user turns" in after
