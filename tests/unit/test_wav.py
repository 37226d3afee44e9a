"""voicecli.audio.wav: PCM16 WAVs in and out, and clear errors for anything else."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from voicecli.audio import dsp
from voicecli.audio.wav import read_wav, read_wav_48k, write_wav
from voicecli.errors import UsageError


def write_raw_wav(path: Path, frames: bytes, *, channels: int, width: int, rate: int) -> None:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(frames)


def test_write_then_read_gives_the_same_samples_and_rate(tmp_path: Path) -> None:
    beep = dsp.tone(440, 250, rate=16000)
    write_wav(tmp_path / "beep.wav", beep, 16000)
    samples, rate = read_wav(tmp_path / "beep.wav")
    assert rate == 16000
    np.testing.assert_array_equal(samples, beep)


def test_stereo_is_mixed_to_mono(tmp_path: Path) -> None:
    left = np.array([100, -200, 300], dtype=np.int16)
    right = np.array([300, -400, 300], dtype=np.int16)
    interleaved = np.stack([left, right], axis=1).astype("<i2").tobytes()
    write_raw_wav(tmp_path / "st.wav", interleaved, channels=2, width=2, rate=44100)
    samples, rate = read_wav(tmp_path / "st.wav")
    assert rate == 44100
    np.testing.assert_array_equal(samples, [200, -300, 300])


def test_read_wav_48k_resamples(tmp_path: Path) -> None:
    write_wav(tmp_path / "lo.wav", dsp.tone(440, 500, rate=22050), 22050)
    audio = read_wav_48k(tmp_path / "lo.wav")
    assert audio.shape == (24000,)
    assert dsp.normalized_xcorr_peak(dsp.tone(440, 500), audio)[0] > 0.999


def test_a_truncated_file_keeps_its_whole_frames(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    write_wav(path, np.arange(10, dtype=np.int16), 8000)
    path.write_bytes(path.read_bytes()[:-3])  # cut mid-sample
    samples, _ = read_wav(path)
    np.testing.assert_array_equal(samples, np.arange(8, dtype=np.int16))


def test_a_non_wav_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "song.mp3"
    path.write_bytes(b"ID3\x03\x00 not a wav at all")
    with pytest.raises(UsageError) as caught:
        read_wav(path)
    assert str(path) in caught.value.message and "16-bit PCM WAV" in caught.value.message
    assert "\n" not in caught.value.message
    assert caught.value.hint is not None and "pcm_s16le" in caught.value.hint


def test_an_empty_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(UsageError, match="empty.wav: not a 16-bit PCM WAV"):
        read_wav(tmp_path / "empty.wav")


def test_eight_bit_wav_is_refused_with_its_width(tmp_path: Path) -> None:
    write_raw_wav(tmp_path / "u8.wav", bytes(range(100)), channels=1, width=1, rate=8000)
    with pytest.raises(UsageError, match=r"u8.wav: 8-bit WAV; only 16-bit PCM"):
        read_wav(tmp_path / "u8.wav")


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nope.wav: no such file"):
        read_wav_48k(tmp_path / "nope.wav")


def test_write_wav_refuses_float_samples(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="int16"):
        write_wav(tmp_path / "f.wav", np.zeros(10, dtype=np.float32), 48000)


def test_write_to_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot write"):
        write_wav(tmp_path / "no" / "such" / "dir.wav", dsp.silence(10))
