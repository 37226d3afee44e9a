"""voicecli.server.vad: the offline server-VAD emulation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_dsp import opus_round_trip
from voicecli.audio import dsp
from voicecli.server.responders import Pcm
from voicecli.server.vad import (
    MAX_BUFFER_MS,
    EnergyVad,
    SpeechStarted,
    SpeechStopped,
    VadEvent,
    VadSettings,
)


def speechlike(ms: int, *, dbfs: float = -20.0, seed: int = 0) -> Pcm:
    """A voiced buzz (140 Hz and harmonics) in 4 Hz syllables, at ``dbfs`` RMS overall.

    Stands in for a talker: espeak-ng measures -20 dBFS RMS with frame levels of -35..-14 dBFS,
    and its syllables dip between peaks much like these.
    """
    t = np.arange(dsp.ms_to_samples(ms)) / 48000
    buzz = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    buzz = buzz * np.abs(np.sin(np.pi * 4 * t)) ** 0.5
    buzz = buzz + np.random.default_rng(seed).normal(0, 0.05, t.shape[0])
    scale = 32768 * 10 ** (dbfs / 20) / np.sqrt(np.mean(np.square(buzz)))
    pcm: Pcm = np.clip(np.rint(buzz * scale), -32768, 32767).astype(np.int16)
    return pcm


def feed_all(vad: EnergyVad, *chunks: Pcm) -> list[VadEvent]:
    return [event for chunk in chunks for event in vad.feed(chunk)]


def summary(events: list[VadEvent]) -> list[tuple[str, int, int]]:
    """Comparable form: (kind, ms, audio length in samples)."""
    return [
        ("stopped", e.audio_end_ms, e.audio.shape[0])
        if isinstance(e, SpeechStopped)
        else ("started", e.audio_start_ms, 0)
        for e in events
    ]


def test_threshold_maps_to_a_level() -> None:
    assert VadSettings(threshold=0.5).level_dbfs == -40.0
    assert VadSettings(threshold=0.0).level_dbfs == -70.0
    assert VadSettings(threshold=1.0).level_dbfs == -10.0


def test_manual_turn_detection_has_no_settings() -> None:
    assert VadSettings.from_turn_detection(None) is None


def test_server_vad_fields_map_directly_and_nulls_take_defaults() -> None:
    td = {
        "type": "server_vad",
        "threshold": 0.7,
        "prefix_padding_ms": 100,
        "silence_duration_ms": 900,
    }
    assert VadSettings.from_turn_detection(td) == VadSettings(0.7, 100, 900)
    nulls = {"type": "server_vad", "threshold": None, "create_response": True}
    assert VadSettings.from_turn_detection(nulls) == VadSettings(0.5, 300, 500)


@pytest.mark.parametrize(
    ("eagerness", "silence_ms"),
    [("low", 800), ("medium", 500), ("auto", 500), ("high", 250), (None, 500)],
)
def test_semantic_vad_eagerness_sets_the_silence(eagerness: str | None, silence_ms: int) -> None:
    settings = VadSettings.from_turn_detection({"type": "semantic_vad", "eagerness": eagerness})
    assert settings == VadSettings(silence_duration_ms=silence_ms)


def test_unknown_turn_detection_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown turn_detection type 'push_to_talk'"):
        VadSettings.from_turn_detection({"type": "push_to_talk"})
    with pytest.raises(ValueError, match="threshold"):
        VadSettings.from_turn_detection({"type": "server_vad", "threshold": 2})


@pytest.mark.parametrize("threshold", [0.0, 0.5, 1.0])
def test_digital_and_opus_coded_silence_never_trigger(threshold: float) -> None:
    vad = EnergyVad(VadSettings(threshold=threshold))
    assert vad.feed(dsp.silence(3000)) == []
    assert vad.feed(opus_round_trip(dsp.silence(3000))) == []


def test_dither_level_noise_does_not_trigger_even_at_threshold_zero() -> None:
    hiss = np.random.default_rng(0).integers(-3, 4, 48000 * 3).astype(np.int16)  # about -83 dBFS
    assert EnergyVad(VadSettings(threshold=0.0)).feed(hiss) == []


def test_a_tone_is_one_turn_with_padding_and_trailing_silence() -> None:
    vad = EnergyVad(VadSettings())
    beep = dsp.tone(440, 1000, dbfs=-12.0)
    events = feed_all(vad, dsp.silence(1000), beep, dsp.silence(1000))
    assert summary(events) == [("started", 700, 0), ("stopped", 2500, dsp.ms_to_samples(1800))]
    stopped = events[1]
    assert isinstance(stopped, SpeechStopped)
    # The committed audio is 300 ms of padding, the tone itself, then 500 ms of silence.
    r, lag = dsp.normalized_xcorr_peak(beep, stopped.audio)
    assert r > 0.999 and lag == dsp.ms_to_samples(300)
    assert not stopped.audio[-dsp.ms_to_samples(480) :].any()


def test_speech_through_opus_is_detected_like_the_original() -> None:
    audio = np.concatenate([dsp.silence(1000), speechlike(1500), dsp.silence(1000)])
    original = summary(EnergyVad(VadSettings()).feed(audio))
    coded = summary(EnergyVad(VadSettings()).feed(opus_round_trip(audio)))
    assert [kind for kind, _, _ in coded] == ["started", "stopped"]
    # Opus delays by 6.5 ms and aiortc's mono->stereo upmix lowers the level by 3 dB: the turn
    # may shift by one 20 ms frame, no more.
    for (_, coded_ms, _), (_, original_ms, _) in zip(coded, original, strict=True):
        assert abs(coded_ms - original_ms) <= 20


def test_pauses_shorter_than_the_silence_duration_stay_in_one_turn() -> None:
    vad = EnergyVad(VadSettings(silence_duration_ms=500))
    events = feed_all(vad, speechlike(800), dsp.silence(400), speechlike(800), dsp.silence(600))
    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped]


def test_a_longer_pause_splits_turns() -> None:
    vad = EnergyVad(VadSettings(silence_duration_ms=300))
    events = feed_all(vad, speechlike(800), dsp.silence(400), speechlike(800), dsp.silence(600))
    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped] * 2


def test_silence_duration_sets_when_the_turn_ends() -> None:
    vad = EnergyVad(VadSettings(silence_duration_ms=800))
    events = feed_all(vad, dsp.silence(500), dsp.tone(440, 500), dsp.silence(1000))
    assert summary(events)[1][:2] == ("stopped", 1800)


def test_a_click_is_not_speech() -> None:
    vad = EnergyVad(VadSettings())
    assert feed_all(vad, dsp.silence(500), dsp.tone(1000, 40, dbfs=-3), dsp.silence(1000)) == []


def test_a_quiet_talker_needs_a_lower_threshold() -> None:
    quiet = np.concatenate([speechlike(1000, dbfs=-45.0), dsp.silence(1000)])
    assert EnergyVad(VadSettings(threshold=0.5)).feed(quiet) == []
    assert len(EnergyVad(VadSettings(threshold=0.3)).feed(quiet)) == 2


def test_padding_is_clamped_at_the_session_start() -> None:
    events = EnergyVad(VadSettings()).feed(np.concatenate([dsp.silence(100), dsp.tone(440, 500)]))
    assert events == [SpeechStarted(audio_start_ms=0)]


def test_position_counts_every_sample_fed() -> None:
    vad = EnergyVad(VadSettings())
    feed_all(vad, dsp.silence(7), dsp.silence(13), dsp.silence(1000))
    assert vad.position_ms == 1020


def test_idle_memory_is_bounded_to_the_prefix_padding() -> None:
    vad = EnergyVad(VadSettings(prefix_padding_ms=300))
    vad.feed(np.random.default_rng(0).integers(-50, 50, 48000 * 30).astype(np.int16))
    assert vad.commit().shape[0] <= dsp.ms_to_samples(300)


def test_manual_mode_keeps_everything_until_commit() -> None:
    vad = EnergyVad(None)
    beep = dsp.tone(440, 1000)
    assert feed_all(vad, *np.array_split(beep, 7)) == []  # unaligned chunks, no events
    np.testing.assert_array_equal(vad.commit(), beep)
    assert vad.commit().shape == (0,)


def test_clear_drops_the_buffered_audio() -> None:
    vad = EnergyVad(None)
    vad.feed(dsp.tone(440, 500))
    vad.clear()
    vad.feed(dsp.silence(100))
    assert vad.commit().shape == (dsp.ms_to_samples(100),)
    assert vad.position_ms == 600


def test_manual_mode_keeps_at_most_five_minutes() -> None:
    vad = EnergyVad(None)
    second = dsp.silence(1000)
    for _ in range(MAX_BUFFER_MS // 1000 + 2):
        vad.feed(second)
    assert vad.commit().shape == (dsp.ms_to_samples(MAX_BUFFER_MS),)


def test_commit_during_a_turn_returns_it_and_ends_it() -> None:
    vad = EnergyVad(VadSettings())
    events = feed_all(vad, dsp.silence(500), dsp.tone(440, 500))
    assert [type(e) for e in events] == [SpeechStarted]
    assert vad.commit().shape == (dsp.ms_to_samples(800),)
    assert vad.feed(dsp.silence(1000)) == []  # no speech_stopped for a committed turn


# --- properties -------------------------------------------------------------------------

segment = st.tuples(st.sampled_from(["silence", "tone", "speech", "click"]), st.integers(10, 900))


def render(segments: list[tuple[str, int]]) -> Pcm:
    makers: dict[str, Callable[[int], Pcm]] = {
        "silence": dsp.silence,
        "tone": lambda ms: dsp.tone(440, ms),
        "speech": lambda ms: speechlike(ms, seed=ms),
        "click": lambda ms: dsp.tone(2000, min(ms, 40), dbfs=-6),
    }
    return np.concatenate([makers[kind](ms) for kind, ms in segments] + [dsp.silence(0)])


@settings(max_examples=60, deadline=None)
@given(st.lists(segment, max_size=8), st.lists(st.integers(1, 3000), max_size=20))
def test_any_chunking_gives_the_same_events(
    segments: list[tuple[str, int]], cuts: list[int]
) -> None:
    audio = render(segments)
    whole = EnergyVad(VadSettings()).feed(audio)
    points = sorted({min(c * 7, audio.shape[0]) for c in cuts})
    chunked = feed_all(EnergyVad(VadSettings()), *np.split(audio, points))
    assert summary(chunked) == summary(whole)
    for a, b in zip(chunked, whole, strict=True):
        if isinstance(a, SpeechStopped) and isinstance(b, SpeechStopped):
            np.testing.assert_array_equal(a.audio, b.audio)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(segment, max_size=8), st.sampled_from([0, 100, 300]), st.sampled_from([20, 250, 500])
)
def test_events_alternate_and_stay_within_the_audio(
    segments: list[tuple[str, int]], prefix_ms: int, silence_ms: int
) -> None:
    vad = EnergyVad(VadSettings(prefix_padding_ms=prefix_ms, silence_duration_ms=silence_ms))
    audio = render(segments)
    events = vad.feed(audio)
    expected = [SpeechStarted, SpeechStopped] * len(events)
    assert [type(e) for e in events] == expected[: len(events)]
    times = [e.audio_start_ms if isinstance(e, SpeechStarted) else e.audio_end_ms for e in events]
    assert times == sorted(times)
    assert all(0 <= t <= vad.position_ms for t in times)
    for started, stopped in zip(events[::2], events[1::2], strict=False):
        assert isinstance(started, SpeechStarted) and isinstance(stopped, SpeechStopped)
        duration_ms = stopped.audio_end_ms - started.audio_start_ms
        assert abs(stopped.audio.shape[0] - dsp.ms_to_samples(duration_ms)) < 48
