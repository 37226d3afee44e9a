"""Doctor audio judgements on known signals: level, clipping, silence, and the echo path."""

from __future__ import annotations

import numpy as np
import pytest

from voicecli.audio.dsp import rms_dbfs, silence, tone
from voicecli.audio.formats import RATE_HZ, Pcm
from voicecli.doctor.audio import (
    STRONG_ECHO_DBFS,
    AudioProbe,
    chirp,
    find_echo,
    judge_echo,
    judge_recording,
    rates,
    recording,
)

LABEL = "'mic' (#3), ALSA"


def _speechy(dbfs: float) -> Pcm:
    """Two seconds of a tone switched on and off, like words and pauses."""
    parts = [tone(300.0, 300, dbfs=dbfs), silence(200)] * 4
    return np.concatenate(parts)


def test_a_working_mic_is_ok_with_its_level() -> None:
    finding = judge_recording(_speechy(-10.0), None, LABEL, 48_000)
    assert finding.status == "ok"
    assert "RMS" in finding.measured and "peak -10.0 dBFS" in finding.measured
    assert finding.data["peak_dbfs"] == pytest.approx(-10.0, abs=0.1)


def test_digital_silence_is_a_failure_that_says_muted() -> None:
    finding = judge_recording(silence(2000), None, LABEL, 48_000)
    assert finding.status == "fail"
    assert "digital silence" in finding.measured
    assert finding.hint and "muted" in finding.hint and "--input-device" in finding.hint


def test_a_very_quiet_mic_warns() -> None:
    finding = judge_recording(_speechy(-60.0), None, LABEL, 48_000)
    assert finding.status == "warn"
    assert "very quiet" in finding.measured and finding.hint


def test_clipping_warns_with_the_count() -> None:
    loud = np.clip(_speechy(0.0).astype(np.int32) * 4, -32768, 32767).astype(np.int16)
    finding = judge_recording(loud, None, LABEL, 48_000)
    assert finding.status == "warn"
    assert "clipping" in finding.measured and "gain" in (finding.hint or "")
    assert finding.data["clipped_samples"] > 0.001 * loud.shape[0]


def test_no_audio_at_all_fails_with_the_cause() -> None:
    finding = judge_recording(silence(0), "the input device stopped", LABEL, 48_000)
    assert finding.status == "fail" and "stopped" in finding.measured


def _echoed(delay_ms: float, gain_db: float, noise_dbfs: float = -70.0) -> tuple[Pcm, Pcm]:
    """A recording: noise, then the chirp ``delay_ms`` after the start, ``gain_db`` quieter."""
    sweep = chirp()
    rng = np.random.default_rng(7)
    recorded = rng.normal(0, 32768 * 10 ** (noise_dbfs / 20), RATE_HZ * 2)
    at = round(delay_ms * RATE_HZ / 1000)
    recorded[at : at + sweep.shape[0]] += sweep * 10 ** (gain_db / 20)
    return sweep, np.clip(np.rint(recorded), -32768, 32767).astype(np.int16)


def test_find_echo_measures_delay_and_level() -> None:
    sweep, recorded = _echoed(delay_ms=180.0, gain_db=-20.0)
    # The chirp played at t = 10.0 s; the recording started at 9.9 s: heard at 10.08 s.
    echo = find_echo(sweep, recorded, recorded_start_s=9.9, played_s=10.0)
    assert echo.delay_ms == pytest.approx(80.0, abs=1.0)
    assert echo.loss_db == pytest.approx(20.0, abs=1.0)
    assert echo.level_dbfs == pytest.approx(rms_dbfs(sweep) - 20.0, abs=1.0)
    assert echo.r > 0.9


def test_a_loud_echo_recommends_headphones_or_half_duplex() -> None:
    sweep, recorded = _echoed(delay_ms=120.0, gain_db=-3.0)
    finding = judge_echo(find_echo(sweep, recorded, 0.0, 0.0))
    assert finding.status == "warn"
    assert finding.data["level_dbfs"] >= STRONG_ECHO_DBFS
    assert "headphones" in (finding.hint or "") and "--duplex half" in (finding.hint or "")
    assert finding.data["delay_ms"] == pytest.approx(120.0, abs=1.0)


def test_a_faint_echo_is_reported_but_ok() -> None:
    sweep, recorded = _echoed(delay_ms=50.0, gain_db=-40.0, noise_dbfs=-90.0)
    finding = judge_echo(find_echo(sweep, recorded, 0.0, 0.0))
    assert finding.status == "ok"
    assert "echo after 50 ms" in finding.measured


def test_no_echo_when_the_mic_hears_only_noise() -> None:
    sweep = chirp()
    noise = np.random.default_rng(3).normal(0, 300, RATE_HZ * 2)
    finding = judge_echo(find_echo(sweep, np.rint(noise).astype(np.int16), 0.0, None))
    assert finding.status == "ok" and finding.measured.startswith("no echo")


async def test_steps_after_a_missing_device_are_skipped_with_the_reason() -> None:
    probe = AudioProbe()
    probe.missing["input"] = "no usable input device"
    assert (await recording(probe)).measured == "not run: no usable input device"
    assert (await rates(probe, "input")).status == "skip"
