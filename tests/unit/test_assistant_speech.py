"""The assistant's voice and ears without the network: eSpeak NG synthesis, the recogniser's
worker process and its protocol failures, and the missing-extra message."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import voicecli.server.assistant as assistant
from voicecli.audio.dsp import resample, rms_dbfs
from voicecli.audio.formats import RATE_HZ
from voicecli.commands.serve import build_responder
from voicecli.server.assistant.recognizer import SAMPLE_RATE, command_sentences
from voicecli.server.assistant.synth import Synth, find_library
from voicecli.server.assistant.worker import RecognizerError, RecognizerProcess


@pytest.fixture(scope="module")
def synth() -> Synth:
    return Synth()


@pytest.fixture(scope="module")
def recognizer() -> Iterator[RecognizerProcess]:
    process = RecognizerProcess()
    process.start()
    yield process
    process.close()


def test_the_bundled_espeak_library_and_data_are_used() -> None:
    found = find_library()
    assert found is not None
    assert found.data is not None and Path(found.data, "phontab").is_file()  # the wheel's data


def test_speech_is_audible_48k_and_grows_with_the_text(synth: Synth) -> None:
    short, long = synth.speak("Hello."), synth.speak("Hello, this is a much longer sentence.")
    assert short.dtype == np.int16
    assert 0.3 < short.size / RATE_HZ < 1.5
    assert long.size > 2 * short.size
    assert rms_dbfs(long) > -35.0


def test_the_recogniser_hears_what_the_synthesiser_says(
    synth: Synth, recognizer: RecognizerProcess
) -> None:
    speech = resample(synth.speak("what is seven times eight"), RATE_HZ, SAMPLE_RATE)
    heard = recognizer.transcribe(speech.tobytes())
    assert heard.text == "what is seven times eight"
    assert [name for name, _ in heard.passes] == ["commands"]  # a command: one pass is enough
    again = recognizer.transcribe(speech.tobytes(), heard.cmn)  # the call's adapted state
    assert again.text == heard.text


def test_open_speech_gets_the_general_pass(synth: Synth, recognizer: RecognizerProcess) -> None:
    speech = resample(synth.speak("where is the nearest train station"), RATE_HZ, SAMPLE_RATE)
    heard = recognizer.transcribe(speech.tobytes())
    assert [name for name, _ in heard.passes] == ["commands", "_default"]
    assert "train station" in heard.text


def test_silence_is_heard_as_nothing(recognizer: RecognizerProcess) -> None:
    heard = recognizer.transcribe(np.zeros(SAMPLE_RATE, dtype=np.int16).tobytes())
    assert heard.text == ""


def test_a_worker_that_dies_is_an_error_and_is_started_again(tmp_path: Path) -> None:
    marker = tmp_path / "starts"
    program = f"open({str(marker)!r}, 'a').write('x'); import sys; sys.exit(3)"
    process = RecognizerProcess([sys.executable, "-c", program])
    try:
        for _ in range(2):
            with pytest.raises(RecognizerError, match="ended unexpectedly"):
                process.transcribe(b"\0\0" * 160)
    finally:
        process.close()
    assert marker.read_text() == "xx"


def test_a_worker_that_cannot_load_says_why() -> None:
    program = (
        "import json, struct, sys; m = json.dumps({'error': 'no model'}).encode(); "
        "sys.stdout.buffer.write(struct.pack('>I', len(m)) + m); sys.stdout.flush()"
    )
    process = RecognizerProcess([sys.executable, "-c", program])
    try:
        with pytest.raises(RecognizerError, match="no model"):
            process.transcribe(b"\0\0" * 160)
    finally:
        process.close()


def test_the_command_model_is_trained_on_the_brains_phrasings() -> None:
    sentences = set(command_sentences())
    assert {"what time is it", "what is the date today", "help", "repeat after me"} <= sentences
    assert "what is seven times eight" in sentences


def test_without_the_extra_serve_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assistant, "missing_packages", lambda: ["pocketsphinx"])
    with pytest.raises(assistant.MissingExtraError) as raised:
        build_responder("assistant", None)
    assert "pip install 'voicecli[local]'" in raised.value.message
    assert raised.value.exit_code == 2
