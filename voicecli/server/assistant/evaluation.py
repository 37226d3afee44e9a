"""Measuring the assistant: spoken prompts from eSpeak NG, word error rate, and the grammar
that reads a spoken clock answer back. Shared by the tests and bench/assistant.py.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from voicecli.server.assistant.brain import normalize
from voicecli.server.assistant.numbers import to_words

# The voice the prompts are spoken in: eSpeak NG's Klatt variant, which the bundled US English
# acoustic model recognises best of eSpeak's voices (measured; README).
PROMPT_VOICE = "en-us+klatt"
PROMPT_WPM = 150


def speak_to_wav(text: str, path: Path, voice: str = PROMPT_VOICE, wpm: int = PROMPT_WPM) -> Path:
    """``text`` spoken by the `espeak-ng` program into a WAV (22.05 kHz mono)."""
    program = shutil.which("espeak-ng")
    if program is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    subprocess.run(
        [program, "-v", voice, "-s", str(wpm), "-w", str(path), text],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, words in the reference), after normalize()."""
    ref, hyp = normalize(reference).split(), normalize(hypothesis).split()
    previous = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, start=1):
        current = [i]
        for j, heard in enumerate(hyp, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != heard))
            )
        previous = current
    return previous[-1], len(ref)


def word_error_rate(pairs: Iterable[tuple[str, str]]) -> float:
    """Corpus WER over (reference, hypothesis) pairs: all errors over all reference words."""
    errors = words = 0
    for reference, hypothesis in pairs:
        e, n = word_errors(reference, hypothesis)
        errors, words = errors + e, words + n
    return errors / words if words else 0.0


def clock_grammar() -> str:
    """JSGF for "it is <hour> <minute>" as eSpeak reads "It is HH:MM." (14:05 → fourteen zero
    five). Decoding a reply against it tells which hour the audio says."""
    hours = " | ".join(to_words(h) for h in range(24))
    minutes = " | ".join(
        ["zero zero", *(f"zero {to_words(m)}" for m in range(1, 10))]
        + [to_words(m) for m in range(10, 60)]
    )
    return (
        "#JSGF V1.0;\ngrammar clock;\npublic <answer> = it is <hour> <minute>;\n"
        f"<hour> = {hours};\n<minute> = {minutes};\n"
    )
