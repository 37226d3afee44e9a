"""`voicecli doctor` on PulseAudio virtual devices, against `voicecli serve` (in-process).

The 2 s recording is the floor of every run; each test is one doctor run (3-6 s).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voicecli.audio.dsp import rms_dbfs
from voicecli.audio.formats import RATE_HZ
from voicecli.audio.wav import read_wav_48k
from voicecli.auth.keys import MemoryKeyStore, resolve_key
from voicecli.config import load_settings
from voicecli.doctor.audio import PROBE_RATES, TONE_DBFS, TONE_HZ
from voicecli.doctor.checks import CheckResult, exit_code
from voicecli.doctor.environment import ConfigState
from voicecli.doctor.suite import DoctorReport, DoctorRequest, run_doctor
from voicecli.server.app import running_server
from voicecli.server.echo import EchoResponder
from voicecli.server.http import ServerConfig
from voicecli.testing.pulse import MIC_SINK, SPEAKER, PulseAudio

pytestmark = pytest.mark.device

KEY = "sk-doctor-devices-0123456789"


async def _doctor(tmp_path: Path, **request: Any) -> DoctorReport:
    async with running_server(ServerConfig(responder=EchoResponder)) as server:
        env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": KEY}
        path = tmp_path / "config.toml"
        path.write_text("")
        settings = load_settings(path, env)
        key = resolve_key(settings, MemoryKeyStore())
        return await run_doctor(
            settings, key, ConfigState(path, True, None, 0), DoctorRequest(**request)
        )


def _row(report: DoctorReport, section: str, name: str) -> CheckResult:
    return next(r for r in report.results if r.section == section and r.name == name)


@contextlib.contextmanager
def speaking(pulse: PulseAudio, wav: Path) -> Iterator[None]:
    """Speech into the virtual mic, over and over, while the block runs."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            pulse.play_into_mic(wav).wait()

    talker = threading.Thread(target=loop, daemon=True)
    talker.start()
    try:
        yield
    finally:
        stop.set()
        talker.join(timeout=5)


@contextlib.contextmanager
def echo_path(pulse: PulseAudio) -> Iterator[None]:
    """What the speaker plays reaches the mic (a laptop without headphones)."""
    module = pulse.pactl(
        "load-module",
        "module-loopback",
        f"source={SPEAKER}.monitor",
        f"sink={MIC_SINK}",
        "latency_msec=20",
    ).strip()
    try:
        yield
    finally:
        pulse.pactl("unload-module", module)


async def test_everything_passes_on_working_devices_and_the_tone_is_played(
    pulse: PulseAudio, speech: Path, tmp_path: Path
) -> None:
    played = tmp_path / "speaker.wav"
    with speaking(pulse, speech), pulse.record_speaker(played):
        report = await _doctor(tmp_path, play=True, echo_test=True, call=True)
    problems = [r for r in report.results if r.status not in ("ok", "skip")]
    assert problems == []
    assert exit_code(report.results) == 0
    skipped = [r.name for r in report.results if r.status == "skip"]
    assert skipped == ["UDP via STUN"]  # no STUN server configured: nothing to test
    assert _row(report, "audio", "input rates").data["opens"] == list(PROBE_RATES)
    assert _row(report, "audio", "output rates").data["opens"] == list(PROBE_RATES)
    level = _row(report, "audio", "recording").data["rms_dbfs"]
    speech_level = rms_dbfs(read_wav_48k(speech))
    assert speech_level - 10 < level < 0  # the speech, not silence (it has pauses)
    assert _row(report, "audio", "echo (--echo-test)").measured.startswith("no echo")
    assert "session.created" in _row(report, "api", "call (--call)").data["stages_ms"]
    _assert_tone(read_wav_48k(played))


def _assert_tone(audio: np.ndarray[Any, Any]) -> None:
    """The --play tone reached the speaker: 440 Hz, at its level (a sine's RMS is peak - 3 dB)."""
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > 1000)
    assert loud.size, "nothing was played to the speaker"
    # The first sound; the echo test's chirp follows after a pause of at least 300 ms.
    gaps = np.flatnonzero(np.diff(loud) > RATE_HZ // 10)
    end = loud[gaps[0]] if gaps.size else loud[-1]
    tone = audio[loud[0] : end]
    assert tone.shape[0] / RATE_HZ == pytest.approx(1.0, abs=0.1)
    spectrum = np.abs(np.fft.rfft(tone.astype(np.float64)))
    peak_hz = np.argmax(spectrum) * RATE_HZ / tone.shape[0]
    assert peak_hz == pytest.approx(TONE_HZ, abs=5)
    assert rms_dbfs(tone) == pytest.approx(TONE_DBFS - 3.0, abs=1.5)


async def test_a_silent_mic_fails_and_a_loud_echo_is_measured(
    pulse: PulseAudio, tmp_path: Path
) -> None:
    with echo_path(pulse):
        report = await _doctor(tmp_path, echo_test=True)
    recording = _row(report, "audio", "recording")
    assert recording.status == "fail"
    assert "digital silence" in recording.measured
    assert recording.hint and "muted" in recording.hint
    echo = _row(report, "audio", "echo (--echo-test)")
    assert echo.status == "warn", echo
    assert echo.hint and "headphones" in echo.hint and "--duplex half" in echo.hint
    # The loopback adds its 20 ms latency target plus PulseAudio's buffering.
    assert 0 < echo.data["delay_ms"] < 500
    assert echo.data["level_dbfs"] > -20
    assert exit_code(report.results) == 2
    assert _row(report, "api", "key valid").status == "ok"  # the rest ran regardless
