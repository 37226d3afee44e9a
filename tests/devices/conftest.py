"""Real PortAudio on a private PulseAudio daemon (voicecli.testing.pulse).

One daemon per test session: `pulse_daemon` starts it (about 2 s) and points this process's
PortAudio at it (PULSE_* in os.environ, and a PortAudio re-init if sounddevice was imported
earlier, because PortAudio lists devices only once). `pulse` hands it to a test after undoing
whatever the previous test did to it (killed it, unloaded or suspended the mic).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicecli.testing.pulse import SPEECH_TOOLS, TOOLS, PulseAudio, missing_tools, speech_wav


def require(missing: list[str], install: str) -> None:
    """Skip when something this test needs is missing; fail on CI, which installs all of it
    (.ci/run sets CI=1): a skip there would hide a broken install step."""
    if not missing:
        return
    reason = f"missing {', '.join(missing)} ({install})"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _unavailable(tools: tuple[str, ...]) -> None:
    require(missing_tools(tools), "apt install pulseaudio pulseaudio-utils espeak-ng sox")


@pytest.fixture
def tmux_installed() -> None:
    require(missing_tools(("tmux",)), "apt install tmux")


@pytest.fixture
def local_extra() -> None:
    from voicecli.server.assistant import missing_packages

    require(list(missing_packages()), "pip install 'voicecli[local]'")


@pytest.fixture(scope="session")
def pulse_daemon() -> Iterator[PulseAudio]:
    _unavailable(TOOLS)
    daemon = PulseAudio()
    try:
        daemon.start()
        with daemon.in_process():
            yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def pulse(pulse_daemon: PulseAudio) -> PulseAudio:
    pulse_daemon.ensure_ready()
    return pulse_daemon


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 1.5 s of espeak-ng speech, 48 kHz mono, with 300 ms of leading silence."""
    _unavailable(SPEECH_TOOLS)
    path = tmp_path_factory.mktemp("speech") / "speech48k.wav"
    return speech_wav("Testing one two three.", path)
