"""An energy-based stand-in for the service's server VAD, as a pure object.

No I/O and no clock: time is the number of samples fed (48 kHz mono int16), so the same audio
gives the same events however it is chunked. Audio is judged in 20 ms frames: a frame is
voiced when its RMS level reaches the threshold level (see ``VadSettings.level_dbfs``).

Event times follow the GA event docs: ``speech_started.audio_start_ms`` is the start of the
audio sent to the model, so it *includes* the prefix padding (speech onset minus
``prefix_padding_ms``, or 0 near the session start), and ``speech_stopped.audio_end_ms`` is the
end of that audio, so it includes the ``silence_duration_ms`` of trailing silence. The
committed ``audio`` spans exactly [audio_start_ms, audio_end_ms].
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from voicecli.audio.dsp import rms_dbfs
from voicecli.server.responders import RATE_HZ, Pcm

FRAME_MS = 20
FRAME_SAMPLES = RATE_HZ * FRAME_MS // 1000  # 960
# Voiced frames in a row before speech counts as started: long enough that a click, a cough
# onset or a burst of line noise does not start a turn, short enough for a syllable's vowel.
CONFIRM_FRAMES = 4  # 80 ms
# Bound on kept audio: the manual-mode buffer keeps only the newest 5 minutes, and a VAD turn
# that reaches 5 minutes is cut there (speech_stopped fires as if silence had come).
MAX_BUFFER_MS = 5 * 60 * 1000

# Threshold -> RMS level: threshold 0 -> -70 dBFS, 0.5 -> -40 dBFS, 1 -> -10 dBFS. At the
# default 0.5, espeak-ng speech (about -20 dBFS RMS, -23 dBFS after an aiortc Opus hop) and a
# -12 dBFS-peak tone (-15 dBFS RMS) are far above it; digital silence and Opus-coded silence
# (decoded as exact zeros, -120 dBFS here) are far below it at any threshold.
LEVEL_AT_ZERO_DBFS = -70.0
LEVEL_SPAN_DB = 60.0

# semantic_vad has no silence_duration_ms; eagerness stands in for it (auto is medium).
EAGERNESS_SILENCE_MS = {"low": 800, "medium": 500, "auto": 500, "high": 250}


@dataclass(frozen=True, slots=True)
class VadSettings:
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be within 0..1, got {self.threshold}")
        if self.prefix_padding_ms < 0 or self.silence_duration_ms < 0:
            raise ValueError("prefix_padding_ms and silence_duration_ms must be >= 0")

    @property
    def level_dbfs(self) -> float:
        """The frame RMS level (dBFS) at or above which a frame counts as voiced."""
        return LEVEL_AT_ZERO_DBFS + LEVEL_SPAN_DB * self.threshold

    @classmethod
    def from_turn_detection(cls, td: Mapping[str, Any] | None) -> VadSettings | None:
        """Settings for a GA ``turn_detection`` object; None (manual turns) gives None.

        ``server_vad`` fields map directly (missing or null -> the service defaults).
        ``semantic_vad`` is approximated by server VAD with the default threshold and padding
        and a silence duration from ``eagerness`` (low 800 ms, medium/auto 500, high 250).
        Raises ValueError for any other ``type``.
        """
        if td is None:
            return None
        kind = td.get("type")
        if kind == "server_vad":
            default = cls()
            return cls(
                threshold=float(_or(td.get("threshold"), default.threshold)),
                prefix_padding_ms=int(_or(td.get("prefix_padding_ms"), default.prefix_padding_ms)),
                silence_duration_ms=int(
                    _or(td.get("silence_duration_ms"), default.silence_duration_ms)
                ),
            )
        if kind == "semantic_vad":
            eagerness = td.get("eagerness") or "auto"
            if eagerness not in EAGERNESS_SILENCE_MS:
                raise ValueError(f"unknown semantic_vad eagerness {eagerness!r}")
            return cls(silence_duration_ms=EAGERNESS_SILENCE_MS[eagerness])
        raise ValueError(f"unknown turn_detection type {kind!r}")


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    audio_start_ms: int  # start of the turn's audio, prefix padding included


@dataclass(frozen=True, slots=True, eq=False)  # eq=False: numpy arrays have no boolean ==
class SpeechStopped:
    audio_end_ms: int  # end of the turn's audio, trailing silence included
    audio: Pcm  # the committed turn: prefix padding + speech + trailing silence


VadEvent = SpeechStarted | SpeechStopped


class EnergyVad:
    """Feed 48 kHz mono audio in any chunk sizes; get speech start/stop events.

    ``settings`` None is manual mode (``turn_detection: null``): no events, audio accumulates
    until ``commit`` (bounded to the newest 5 minutes).
    """

    def __init__(self, settings: VadSettings | None) -> None:
        self.settings = settings
        self._fed = 0  # samples fed since the session began
        self._framed = 0  # samples already framed (or taken by commit/clear)
        self._partial = np.zeros(0, dtype=np.int16)  # fed but not yet a whole frame
        self._history: deque[Pcm] = deque(maxlen=_history_frames(settings))
        self._candidate: list[Pcm] = []  # voiced frames awaiting confirmation
        self._segment: list[Pcm] = []  # the current turn, non-empty while speaking
        self._onset = 0  # sample where the unconfirmed voiced run began
        self._segment_start = 0  # sample where the current turn's audio begins
        self._silent_frames = 0  # unvoiced frames in a row while speaking

    def configure(self, settings: VadSettings | None) -> None:
        """New settings (session.update): time keeps counting; a turn in progress ends silently."""
        kept = [*self._history, *self._segment]
        self.settings = settings
        self._history = deque(kept, maxlen=_history_frames(settings))
        self._candidate = []
        self._segment = []
        self._silent_frames = 0

    @property
    def position_ms(self) -> int:
        """Milliseconds of audio fed since the session began."""
        return _ms(self._fed)

    @property
    def speaking(self) -> bool:
        return bool(self._segment)

    def feed(self, pcm: Pcm) -> list[VadEvent]:
        """Take more audio; return the events it completes, in order."""
        self._fed += pcm.shape[0]
        data = np.concatenate([self._partial, pcm.astype(np.int16, copy=False)])
        whole = data.shape[0] - data.shape[0] % FRAME_SAMPLES
        self._partial = data[whole:].copy()
        events: list[VadEvent] = []
        for offset in range(0, whole, FRAME_SAMPLES):
            # A copy, not a view: a kept view would pin the whole fed chunk in memory.
            event = self._frame(data[offset : offset + FRAME_SAMPLES].copy())
            if event is not None:
                events.append(event)
        return events

    def commit(self) -> Pcm:
        """Everything buffered since the last commit/clear/stop, then start afresh.

        In VAD mode that is the turn in progress (or, when idle, only the prefix history).
        """
        parts = [*self._segment, *self._history, *self._candidate, self._partial]
        self.clear()
        return np.concatenate(parts).astype(np.int16, copy=False)

    def clear(self) -> None:
        """Drop buffered audio and any turn in progress (no speech_stopped for it)."""
        self._framed = self._fed
        self._partial = np.zeros(0, dtype=np.int16)
        self._history.clear()
        self._candidate = []
        self._segment = []
        self._silent_frames = 0

    def _frame(self, frame: Pcm) -> VadEvent | None:
        start = self._framed
        self._framed += FRAME_SAMPLES
        if self.settings is None:
            self._history.append(frame)
            return None
        voiced = rms_dbfs(frame) >= self.settings.level_dbfs
        if self._segment:
            return self._continue_turn(frame, voiced, self.settings)
        if voiced:
            return self._confirm(frame, start)
        # An unconfirmed run was a blip: it becomes plain history (possible prefix padding).
        self._history.extend([*self._candidate, frame])
        self._candidate = []
        return None

    def _confirm(self, frame: Pcm, start: int) -> SpeechStarted | None:
        if not self._candidate:
            self._onset = start
        self._candidate.append(frame)
        if len(self._candidate) < CONFIRM_FRAMES:
            return None
        self._segment_start = self._onset - FRAME_SAMPLES * len(self._history)
        self._segment = [*self._history, *self._candidate]
        self._history.clear()
        self._candidate = []
        self._silent_frames = 0
        return SpeechStarted(audio_start_ms=_ms(self._segment_start))

    def _continue_turn(self, frame: Pcm, voiced: bool, settings: VadSettings) -> VadEvent | None:
        self._segment.append(frame)
        self._silent_frames = 0 if voiced else self._silent_frames + 1
        silent_enough = self._silent_frames >= _silence_frames(settings)
        too_long = len(self._segment) * FRAME_MS >= MAX_BUFFER_MS
        if not (silent_enough or too_long):
            return None
        audio = np.concatenate(self._segment)
        self._segment = []
        self._silent_frames = 0
        return SpeechStopped(audio_end_ms=_ms(self._segment_start + audio.shape[0]), audio=audio)


def _ms(samples: int) -> int:
    return samples * 1000 // RATE_HZ


def _or(value: Any, default: float) -> Any:
    return default if value is None else value


def _silence_frames(settings: VadSettings) -> int:
    # Rounded up to whole frames, and at least one: with 0 ms every voiced frame would "stop".
    return max(1, math.ceil(settings.silence_duration_ms / FRAME_MS))


def _history_frames(settings: VadSettings | None) -> int:
    """Idle audio kept: the prefix padding in whole frames, rounded up (300 ms → 15 frames);
    in manual mode everything since the last commit, bounded."""
    if settings is None:
        return MAX_BUFFER_MS // FRAME_MS
    return math.ceil(settings.prefix_padding_ms / FRAME_MS)
