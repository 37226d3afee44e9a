"""`voicecli talk` end to end: virtual mic → real PortAudio → WebRTC → serve → speaker → monitor."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from voicecli.audio.dsp import envelope_correlation
from voicecli.audio.wav import read_wav_48k
from voicecli.server.echo import EchoResponder
from voicecli.testing.pulse import PulseAudio

from .talk_kit import Talk, kind, long_answer, play, server, speaker_recording, talking

pytestmark = pytest.mark.device

# Echo: the reply is the user's own turn, through Opus twice (32 kbit/s up, the server's encoder
# down), VAD-trimmed and resampled by PulseAudio. Waveforms do not survive that reliably, the
# loudness envelope does: measured 0.84 for this sentence. Against it, a different espeak
# sentence scores 0.55, a tone 0.23, low noise 0.14: 0.7 tells "our speech came back" apart.
ECHO_MIN_ENVELOPE_R = 0.7
BARGE_IN_MAX_S = 0.100
AUDIBLE_DBFS = -45.0


async def test_speech_goes_round_and_comes_back_out_of_the_speaker(
    pulse: PulseAudio, speech: Path, tmp_path: Path
) -> None:
    async with (
        server(EchoResponder) as running,
        speaker_recording() as recording,
        talking(pulse, running.base_url, tmp_path) as talk,
    ):
        await play(pulse, speech)
        await talk.wait_for(lambda e: kind(e, "AudioState", state="stopped"))
        talk.process.send_signal(signal.SIGINT)
        code, out, _ = await talk.finish()
    assert code == 0
    assert "you: [speech" in out and "assistant: [speech" in out  # the echo's transcripts
    r, _ = envelope_correlation(read_wav_48k(speech), recording.audio(), max_lag_ms=30_000)
    assert r > ECHO_MIN_ENVELOPE_R, f"the speaker did not play the echoed speech (r={r:.2f})"
    stats = json.loads(talk.stats_path.read_text())
    assert stats["audio_path"]["capture_to_rtp_ms"]["n"] > 0
    assert stats["audio_path"]["rtp_to_speaker_ms"]["n"] > 0
    assert stats["audio_path"]["speaker_pull_errors"] == 0  # the playout never failed the callback
    assert talk.transcript_path.read_text().startswith("you: [speech")


async def test_barge_in_silences_the_speaker_within_100_ms(
    pulse: PulseAudio, speech: Path, tmp_path: Path
) -> None:
    async with (
        server(long_answer(tmp_path)) as running,
        speaker_recording() as recording,
        talking(pulse, running.base_url, tmp_path) as talk,
    ):
        await play(pulse, speech)
        started = await talk.wait_for(lambda e: kind(e, "AudioState", state="started"))
        await _wait_until(started["t"] + 1.5)  # the answer is playing
        before = len(talk.events())
        await play(pulse, speech)  # the user talks over it
        barge = await talk.wait_for(
            lambda e: kind(e, "SpeechMark", state="started") and e["t"] > started["t"]
        )
        await talk.wait_for(lambda e: kind(e, "AudioState", state="cleared"))
        talk.process.send_signal(signal.SIGINT)
        await talk.finish()
    assert len(talk.events()) > before
    loud = recording.loud_windows(AUDIBLE_DBFS)
    playing = [t for t, is_loud in loud if is_loud and started["t"] < t < barge["t"]]
    assert playing, "the long answer never reached the speaker"
    # The user's turn is ~1.5 s long: the next reply cannot start within a second of it.
    after = [t - barge["t"] for t, is_loud in loud if is_loud and 0 <= t - barge["t"] < 1.0]
    silenced_after_s = max(after, default=0.0) + 0.010  # the end of the last loud window
    print(f"speaker silent {silenced_after_s * 1000:.0f} ms after speech_started")
    assert silenced_after_s <= BARGE_IN_MAX_S, (
        f"speaker still loud {silenced_after_s:.3f} s after speech_started reached the client"
    )


async def _wait_until(monotonic_s: float) -> None:
    import asyncio

    await asyncio.sleep(max(0.0, monotonic_s - time.monotonic()))


async def test_muted_mic_sends_silence(pulse: PulseAudio, speech: Path, tmp_path: Path) -> None:
    async with (
        server(EchoResponder) as running,
        talking(pulse, running.base_url, tmp_path) as talk,
    ):
        talk.press(b"m")
        await talk.wait_for(lambda e: kind(e, "Controls", muted=True))
        await play(pulse, speech)
        await _wait_until(time.monotonic() + 1.0)  # longer than the server's VAD silence
        assert not [e for e in talk.events() if e["event"] == "SpeechMark"]
        talk.press(b"m")
        await talk.wait_for(lambda e: kind(e, "Controls", muted=False))
        await play(pulse, speech)
        await talk.wait_for(lambda e: kind(e, "SpeechMark", state="started"))
        talk.press(b"q")
        code, _, _ = await talk.finish()
    assert code == 0


async def test_push_to_talk_commits_on_the_second_space(
    pulse: PulseAudio, speech: Path, tmp_path: Path
) -> None:
    async with (
        server(EchoResponder) as running,
        talking(pulse, running.base_url, tmp_path, "--vad", "off") as talk,
    ):
        await play(pulse, speech)  # not talking yet: the mic sends silence
        await _wait_until(time.monotonic() + 0.3)
        assert not [e for e in talk.events() if e["event"] == "ResponseStarted"]
        talk.press(b" ")
        await talk.wait_for(lambda e: kind(e, "Controls", talking=True))
        await play(pulse, speech)
        talk.press(b" ")
        await talk.wait_for(lambda e: kind(e, "UserText", final=True))
        await talk.wait_for(lambda e: kind(e, "AudioState", state="stopped"))
        talk.press(b"q")
        code, out, _ = await talk.finish()
    assert code == 0
    assert "you: [speech" in out  # the committed turn was heard (and only it: one user line)
    assert out.count("you:") == 1


async def test_half_duplex_gates_the_mic_while_the_assistant_speaks(
    pulse: PulseAudio, speech: Path, tmp_path: Path
) -> None:
    async with (
        server(long_answer(tmp_path)) as running,
        talking(pulse, running.base_url, tmp_path, "--duplex", "half") as talk,
    ):
        await play(pulse, speech)
        started = await talk.wait_for(lambda e: kind(e, "AudioState", state="started"))
        await talk.wait_for(lambda e: kind(e, "Controls", gate_closed=True))
        await play(pulse, speech)  # talking over the assistant: gated, no barge-in
        await _wait_until(time.monotonic() + 0.8)
        marks = [e for e in talk.events() if e["event"] == "SpeechMark" and e["t"] > started["t"]]
        cleared = [e for e in talk.events() if kind(e, "AudioState", state="cleared")]
        talk.press(b"q")
        code, _, _ = await talk.finish()
    assert code == 0
    assert not marks and not cleared


async def test_ctrl_c_ends_the_call_within_a_second(pulse: PulseAudio, tmp_path: Path) -> None:
    async with (
        server(EchoResponder) as running,
        talking(pulse, running.base_url, tmp_path) as talk,
    ):
        await _wait_until(time.monotonic() + 0.5)
        sent = time.monotonic()
        talk.process.send_signal(signal.SIGINT)
        code, _, err = await talk.finish()
        took = time.monotonic() - sent
        await _wait_until(time.monotonic() + 0.3)
        open_calls = dict(running.endpoints.calls)  # a call leaves this when it is closed
    assert code == 0, err
    assert took < 1.0, f"Ctrl-C took {took:.2f} s"
    assert "session" in err  # the summary, after the screen was given back
    assert not open_calls  # hung up
    # Released: no client capture streams are left (the remap module's own stream has no client).
    outputs = pulse.pactl("list", "short", "source-outputs").splitlines()
    assert [line for line in outputs if line.split("\t")[2] != "-"] == []


async def test_a_missing_device_is_one_line_and_exit_7(pulse: PulseAudio, tmp_path: Path) -> None:
    talk = Talk(pulse, "http://127.0.0.1:9/v1", tmp_path, "--input-device", "no-such-mic")
    code, _, err = await talk.finish()
    assert code == 7
    assert err.startswith("error: ") and "no-such-mic" in err
    assert "Traceback" not in err


async def test_the_audio_server_dying_ends_the_call_with_exit_7(
    pulse: PulseAudio, tmp_path: Path
) -> None:
    async with (
        server(EchoResponder) as running,
        talking(pulse, running.base_url, tmp_path) as talk,
    ):
        pulse.kill()
        code, _, err = await talk.finish()
    assert code == 7
    assert "error: " in err and "Traceback" not in err
