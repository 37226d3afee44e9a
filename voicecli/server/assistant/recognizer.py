"""Speech recognition with PocketSphinx's bundled US English model, in two passes.

Pass 1 decodes with a small *command* language model: the brain's own phrasings (time, date,
sums, help, "repeat after me") mixed with the 3,000 most frequent words of the bundled general
model as plain unigrams. It is fast and, on commands, far more accurate than the general model.
When pass 1 hears a command, that is the transcript. Otherwise pass 2 decodes the audio with the
bundled *general* model (72k words, trigrams), so that "I heard: …" reports what an open
vocabulary recogniser made of the words, not a command-shaped guess. For "repeat after me …",
pass 2 decodes only the audio after "me" (word times from pass 1).

Measured word error rates are in bench/assistant.py and the README.

This module runs in the recogniser's worker process (worker.py): PocketSphinx holds the GIL
while it decodes (up to ~250 ms in one call at the end of an utterance), which would stall the
server's event loop and the audio it paces for every call.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from voicecli.server.assistant import brain
from voicecli.server.assistant.numbers import TENS, UNITS

SAMPLE_RATE = 16000
BYTES_PER_FRAME = 2 * SAMPLE_RATE // 100  # PocketSphinx frames are 10 ms of 16-bit samples
CHUNK_BYTES = 2 * SAMPLE_RATE // 10  # fed 100 ms at a time, as live audio would be
COMMANDS = "commands"
GENERAL = "_default"  # the search PocketSphinx builds from its default (general) model
GENERAL_WORDS = 3000  # general-model words the command model may also hear
GENERAL_SHARE = 0.4  # of the command model's unigram mass
PHRASE_WEIGHT = 10  # each command phrasing counts as this many sentences
DITHER_SEED = 16000
FRAME_SAMPLES = SAMPLE_RATE // 50  # 20 ms frames for finding where the speech is
SILENCE_FLOOR_DBFS = -55.0
SPEECH_RANGE_DB = 40.0
MARGIN_FRAMES = 12  # 240 ms of context kept either side of the speech


@dataclass
class Heard:
    text: str
    cmn: str  # cepstral mean after this utterance: the next one of the same call starts here
    passes: list[tuple[str, float]] = field(default_factory=list)  # (search, decode ms)


@dataclass(frozen=True)
class _Decoded:
    text: str
    ends: list[tuple[str, int]]  # (word, last frame) of each word, fillers left out


class TwoPassRecognizer:
    """One warm decoder holding both searches; not thread-safe (one per worker process)."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder  # type: ignore[import-untyped,import-not-found,unused-ignore]

        self._decoder: Any = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", dither=False)
        self.initial_cmn = str(self._decoder.get_cmn())
        self._decoder.add_lm(COMMANDS, _command_model(self._decoder))

    def transcribe(self, pcm16k: bytes, cmn: str | None = None) -> Heard:
        """``pcm16k``: 16 kHz mono s16le. ``cmn``: where the call's previous utterance left it."""
        start_cmn = cmn or self.initial_cmn
        heard = Heard("", start_cmn)
        pcm16k = speech_span(pcm16k)
        if not pcm16k:
            return heard
        first = self._pass(heard, COMMANDS, pcm16k, start_cmn)
        if brain.is_clear_command(first.text):
            heard.text = first.text
        elif brain.classify(first.text) is brain.Intent.REPEAT:
            heard.text = self._repeat(heard, first, pcm16k, start_cmn)
        else:
            heard.text = self._pass(heard, GENERAL, pcm16k, start_cmn).text or first.text
        return heard

    def decode_grammar(self, jsgf: str, pcm16k: bytes) -> str:
        """The best path through a JSGF grammar (tests check spoken answers of a known shape)."""
        self._decoder.add_jsgf_string("grammar", jsgf)
        return self._decode("grammar", pcm16k, self.initial_cmn).text

    def _repeat(self, heard: Heard, first: _Decoded, pcm16k: bytes, cmn: str) -> str:
        end = _prefix_end(first.ends, brain.REPEAT_PREFIX.split())
        if end is None:
            return first.text
        rest = self._pass(heard, GENERAL, pcm16k[(end + 1) * BYTES_PER_FRAME :], cmn).text
        return f"{brain.REPEAT_PREFIX} {rest}".strip() if rest else first.text

    def _pass(self, heard: Heard, search: str, pcm16k: bytes, cmn: str) -> _Decoded:
        started = time.perf_counter()
        decoded = self._decode(search, pcm16k, cmn)
        heard.passes.append((search, (time.perf_counter() - started) * 1000))
        heard.cmn = str(self._decoder.get_cmn())
        return decoded

    def _decode(self, search: str, pcm16k: bytes, cmn: str) -> _Decoded:
        decoder = self._decoder
        decoder.activate_search(search)
        # Every pass over an utterance starts from the same cepstral mean, so the second pass
        # does not adapt twice to the same audio and a transcript depends only on the call.
        decoder.set_cmn(cmn)
        pcm16k = _dithered(pcm16k)
        decoder.start_utt()
        for offset in range(0, len(pcm16k), CHUNK_BYTES):
            decoder.process_raw(pcm16k[offset : offset + CHUNK_BYTES])
        decoder.end_utt()
        hypothesis = decoder.hyp()
        text = str(hypothesis.hypstr) if hypothesis is not None else ""
        ends = [(_word(s.word), int(s.end_frame)) for s in decoder.seg() if _is_word(s.word)]
        return _Decoded(text, ends)


def speech_span(pcm16k: bytes) -> bytes:
    """The audio from just before its first loud frame to just after its last one.

    A committed turn can hold seconds of silence (push-to-talk buffers everything since the last
    commit): decoding it costs time and drags the cepstral mean towards silence. Frames count as
    loud within 40 dB of the loudest one and above -55 dBFS; 250 ms either side are kept.
    """
    samples = np.frombuffer(pcm16k, dtype=np.int16)
    frames = samples[: samples.size // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    if frames.size == 0:
        return b""
    power = np.mean(frames.astype(np.float64) ** 2, axis=1)
    level = 10 * np.log10(np.maximum(power, 1e-10) / 32768.0**2)
    loud = np.flatnonzero(level > max(SILENCE_FLOOR_DBFS, float(level.max()) - SPEECH_RANGE_DB))
    if loud.size == 0:
        return b""
    first = max(0, (int(loud[0]) - MARGIN_FRAMES) * FRAME_SAMPLES)
    last = min(samples.size, (int(loud[-1]) + 1 + MARGIN_FRAMES) * FRAME_SAMPLES)
    return samples[first:last].tobytes()


def _dithered(pcm16k: bytes) -> bytes:
    """The audio plus at most 1 LSB of noise, the same noise for the same audio.

    Digital silence (eSpeak's, and a quiet WebRTC line) makes log-energy features degenerate;
    PocketSphinx's own ``dither`` fixes that but draws from one generator for the decoder's
    whole life, so the same words would transcribe differently depending on what came before.
    """
    samples = np.frombuffer(pcm16k, dtype=np.int16).astype(np.int32)
    noise = np.random.default_rng(DITHER_SEED).integers(-1, 2, samples.size, dtype=np.int32)
    dithered: npt.NDArray[np.int16] = np.clip(samples + noise, -32768, 32767).astype(np.int16)
    return dithered.tobytes()


def _word(token: str) -> str:
    return token.split("(", 1)[0]  # "that(2)": the second pronunciation of "that"


def _is_word(token: str) -> bool:
    return not (token.startswith(("<", "[")) or token.endswith("]"))


def _prefix_end(ends: list[tuple[str, int]], prefix: list[str]) -> int | None:
    """The last frame of ``prefix`` where it starts the utterance's words."""
    words = [w for w, _ in ends]
    for start in range(len(words) - len(prefix) + 1):
        if words[start : start + len(prefix)] == prefix:
            return ends[start + len(prefix) - 1][1]
    return None


def command_sentences() -> list[str]:
    """The command model's training text: the brain's phrasings, and sums."""
    phrases = [
        *brain.TIME_PHRASES,
        *brain.DATE_PHRASES,
        *brain.HELP_PHRASES,
        brain.REPEAT_PREFIX,
    ]
    sentences = [p for p in phrases for _ in range(PHRASE_WEIGHT)]
    operands = [*UNITS, *TENS]
    for left, operator, right in itertools.product(operands, brain.OPERATOR_WORDS, UNITS[:13]):
        sentences.append(f"{brain.ARITHMETIC_PREFIX} {left} {operator} {right}")
    return sentences


def _command_model(decoder: Any) -> Any:
    from pocketsphinx import NGramModel  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from pocketsphinx.lm import ArpaBoLM  # type: ignore[import-untyped,import-not-found,unused-ignore]

    model = ArpaBoLM(add_start=True, text="\n".join(command_sentences()))
    command_mass = sum(model.grams_1.values())
    general = _general_words(decoder, GENERAL_WORDS)
    general_mass = command_mass * GENERAL_SHARE / (1 - GENERAL_SHARE)
    total = sum(p for _, p in general)
    for word, probability in general:
        model.grams_1[word] += max(1, round(general_mass * probability / total))
    model.compute()
    with tempfile.TemporaryDirectory(prefix="voicecli-lm-") as folder:
        path = Path(folder) / "commands.arpa"
        model.write_file(str(path))
        return NGramModel(decoder.config, decoder.logmath, str(path))


def _general_words(decoder: Any, count: int) -> list[tuple[str, float]]:
    """The ``count`` most probable words of the general model that the dictionary has."""
    from pocketsphinx import NGramModel  # type: ignore[import-untyped,import-not-found,unused-ignore]

    config = decoder.config
    general = NGramModel(config, decoder.logmath, config["lm"])
    log_base = math.log(float(config["logbase"]))
    scored: list[tuple[str, float]] = []
    for word in _dictionary_words(config["dict"]):
        scored.append((word, math.exp(int(general.prob([word])) * log_base)))
    scored.sort(key=lambda pair: pair[1], reverse=True)
    return scored[:count]


def _dictionary_words(path: str) -> list[str]:
    words: list[str] = []
    with open(path, encoding="utf-8") as file:
        for line in file:
            word = line.split(" ", 1)[0]
            if "(" not in word and word.isascii() and word.replace("'", "").isalpha():
                words.append(word)
    return words
