"""Listing and choosing devices through the real PortAudio, and `voicecli devices`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from voicecli.audio.devices import list_devices, resolve_device
from voicecli.errors import AudioError
from voicecli.testing.pulse import PulseAudio, has_sound_cards

pytestmark = pytest.mark.device


def _voicecli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicecli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_list_devices_sees_the_pulse_device_with_both_directions(pulse: PulseAudio) -> None:
    found = {d.name: d for d in list_devices()}
    assert "pulse" in found
    device = found["pulse"]
    assert device.hostapi == "ALSA"
    assert device.max_input_channels > 0
    assert device.max_output_channels > 0
    assert device.default_samplerate > 0
    assert sum(d.default_input for d in found.values()) == 1
    assert sum(d.default_output for d in found.values()) == 1


def test_resolve_device_by_index_digits_name_part_and_default(pulse: PulseAudio) -> None:
    pulse_dev = next(d for d in list_devices() if d.name == "pulse")
    assert resolve_device(pulse_dev.index, "input") == pulse_dev
    assert resolve_device(str(pulse_dev.index), "output") == pulse_dev
    assert resolve_device("PULS", "input") == pulse_dev
    default = resolve_device(None, "output")
    assert default.default_output
    assert resolve_device("", "input").default_input


def test_resolve_device_errors_name_the_problem(pulse: PulseAudio) -> None:
    names = [d.name for d in list_devices()]
    part = "ul"  # in both "pulse" and "default", the two ALSA devices PulseAudio provides
    assert sum(part in n for n in names) > 1
    with pytest.raises(AudioError, match="matches several input devices") as ambiguous:
        resolve_device(part, "input")
    assert "'pulse'" in ambiguous.value.message
    with pytest.raises(AudioError, match="no output device matches 'no-such-speaker'") as missing:
        resolve_device("no-such-speaker", "output")
    assert missing.value.hint is not None and "'pulse'" in missing.value.hint
    with pytest.raises(AudioError, match="there is no audio device #999"):
        resolve_device("999", "input")


def test_voicecli_devices_json_lists_the_pulse_devices(pulse: PulseAudio) -> None:
    done = _voicecli("devices", "--json", env=pulse.env)
    assert done.returncode == 0, done.stderr
    devices = json.loads(done.stdout)
    pulse_dev = next(d for d in devices if d["name"] == "pulse")
    assert pulse_dev["hostapi"] == "ALSA"
    assert pulse_dev["max_input_channels"] > 0
    assert {"index", "default_samplerate", "default_input", "default_output"} <= set(pulse_dev)


def test_voicecli_devices_table_marks_the_defaults(pulse: PulseAudio) -> None:
    done = _voicecli("devices", env={**pulse.env, "COLUMNS": "120"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("pulse" in line and "ALSA" in line for line in lines)
    assert any("input, output" in line for line in lines)


def test_voicecli_devices_without_an_audio_server(pulse: PulseAudio) -> None:
    dead = {**pulse.env, "PULSE_SERVER": f"unix:{pulse.root / 'no-such-socket'}"}
    done = _voicecli("devices", env=dead)
    if has_sound_cards():  # decided from the machine, not from the outcome under test
        assert done.returncode == 0  # the real cards are still listed
        assert "pulse" not in done.stdout
    else:  # CI: no sound card and no server: one line, a hint, exit 7
        assert done.returncode == 7
        assert done.stderr.splitlines()[0] == "error: no audio devices found"
        assert done.stderr.splitlines()[1].startswith("hint: ")
