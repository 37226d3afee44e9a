"""Reading and writing 16-bit PCM WAV files (stdlib ``wave``), always as mono int16 arrays."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from voicecli.audio.dsp import resample, to_mono
from voicecli.audio.formats import RATE_HZ, Pcm
from voicecli.errors import UsageError

_CONVERT_HINT = "convert it to 16-bit PCM WAV, e.g. `ffmpeg -i IN -c:a pcm_s16le OUT.wav`"


def read_wav(path: str | Path) -> tuple[Pcm, int]:
    """The samples of a 16-bit PCM WAV, mixed down to mono, and its sample rate.

    Raises UsageError naming the file when it is missing, not a WAV, or not 16-bit PCM.
    """
    path = Path(path)
    try:
        # Open the file ourselves: wave.open(name) leaves a half-built object behind when the
        # open fails, whose __del__ then raises an "exception ignored" warning.
        with path.open("rb") as file, wave.open(file, "rb") as reader:
            return _read_open(path, reader)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", hint="check the path") from None
    except (wave.Error, EOFError) as exc:
        # EOFError: a file shorter than a WAV header; wave.Error: not RIFF/WAVE, or a format
        # (float, A-law, WAVE_FORMAT_EXTENSIBLE on 3.11) that the stdlib cannot read.
        raise UsageError(f"{path}: not a 16-bit PCM WAV file ({exc})", hint=_CONVERT_HINT) from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})", hint="check the path") from None


def read_wav_48k(path: str | Path) -> Pcm:
    """A WAV as mono int16 at 48 kHz, the rate the WebRTC side and the responders use."""
    pcm, rate = read_wav(path)
    return resample(pcm, rate, RATE_HZ)


def write_wav(path: str | Path, pcm: Pcm, rate: int = RATE_HZ) -> None:
    """Write mono int16 ``pcm`` as a 16-bit PCM WAV."""
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(f"write_wav needs 1-D int16 samples, got {pcm.dtype} {pcm.shape}")
    path = Path(path)
    try:
        with path.open("wb") as file, wave.open(file, "wb") as writer:
            writer.setnchannels(1)
            writer.setsampwidth(2)
            writer.setframerate(rate)
            writer.writeframes(pcm.astype("<i2").tobytes())
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror})", hint="check the path") from None


def _read_open(path: Path, reader: wave.Wave_read) -> tuple[Pcm, int]:
    width = reader.getsampwidth()
    if width != 2:
        raise UsageError(
            f"{path}: {8 * width}-bit WAV; only 16-bit PCM is supported", hint=_CONVERT_HINT
        )
    channels = reader.getnchannels()
    data = reader.readframes(reader.getnframes())
    # A truncated file can end mid-frame; keep whole frames only.
    whole = len(data) - len(data) % (2 * channels)
    samples = np.frombuffer(data[:whole], dtype="<i2").astype(np.int16)
    return to_mono(samples, channels), reader.getframerate()
