"""Speech synthesis with eSpeak NG through ctypes: the library and data from the
``espeakng-loader`` wheel (the ``local`` extra), else the system's ``libespeak-ng``.

eSpeak's state is process-global, so one lock guards it. A sentence takes a few milliseconds to
synthesise, and ctypes drops the GIL while the library runs, so ``speak`` is fine in a thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import threading
from dataclasses import dataclass

import numpy as np

from voicecli.audio.dsp import resample
from voicecli.audio.formats import RATE_HZ, Pcm

VOICE = "en-us+klatt"  # the Klatt variant: the bundled recogniser understands it best
WORDS_PER_MINUTE = 150
_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS: espeak_Synth returns when the audio is made
_DONT_EXIT = 0x8000  # espeakINITIALIZE_DONT_EXIT: missing data is an error code, not exit()
_BUFFER_MS = 200
_RATE_PARAMETER = 1  # espeakRATE
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class SynthUnavailable(RuntimeError):
    """No eSpeak NG library could be loaded."""


@dataclass(frozen=True)
class Library:
    path: str
    data: str | None  # the espeak-ng-data folder, or None for the library's built-in default


def find_library() -> Library | None:
    """The bundled eSpeak NG (``espeakng-loader``), else the system's, else None."""
    try:
        loader = importlib.import_module("espeakng_loader")
        return Library(str(loader.get_library_path()), str(loader.get_data_path()))
    except (ImportError, RuntimeError):
        pass
    found = ctypes.util.find_library("espeak-ng")
    return Library(found, None) if found else None


class Synth:
    """Text → 48 kHz mono int16 speech. Loads the library on first use."""

    def __init__(self, voice: str = VOICE, words_per_minute: int = WORDS_PER_MINUTE) -> None:
        self.voice = voice
        self.words_per_minute = words_per_minute
        self._lock = threading.Lock()
        self._lib: ctypes.CDLL | None = None
        self._rate = 0
        self._chunks: list[Pcm] = []
        self._callback = _Callback(self._collect)  # kept alive as long as the library may call

    def speak(self, text: str) -> Pcm:
        with self._lock:
            lib = self._load()
            self._chunks = []
            encoded = text.encode("utf-8") + b"\0"
            status = lib.espeak_Synth(
                encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            if status != 0:
                raise SynthUnavailable(f"eSpeak NG could not speak (error {status})")
            native = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            self._chunks = []
        return resample(native, self._rate, RATE_HZ)

    def _collect(self, samples: object, count: int, events: object) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # 0: go on synthesising

    def _load(self) -> ctypes.CDLL:
        if self._lib is not None:
            return self._lib
        found = find_library()
        if found is None:
            raise SynthUnavailable("no eSpeak NG library found")
        lib = ctypes.CDLL(found.path)
        _declare(lib)
        data = found.data.encode() if found.data else None
        rate = lib.espeak_Initialize(_SYNCHRONOUS, _BUFFER_MS, data, _DONT_EXIT)
        if rate <= 0:
            raise SynthUnavailable(f"eSpeak NG did not start (data: {found.data or 'default'})")
        lib.espeak_SetSynthCallback(self._callback)
        if lib.espeak_SetVoiceByName(self.voice.encode()) != 0:
            raise SynthUnavailable(f"eSpeak NG has no voice {self.voice!r}")
        lib.espeak_SetParameter(_RATE_PARAMETER, self.words_per_minute, 0)
        self._lib, self._rate = lib, int(rate)
        return lib


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_Callback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
