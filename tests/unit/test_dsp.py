"""voicecli.audio.dsp: test signals, levels, resampling, and similarity through a real Opus hop."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterFrame

from voicecli.audio import dsp
from voicecli.rtc import tuning
from voicecli.server.responders import Pcm

OPUS_DELAY_SAMPLES = 312  # libopus look-ahead (6.5 ms at 48 kHz)


def opus_round_trip(pcm: Pcm) -> Pcm:
    """``pcm`` through aiortc's Opus encoder (tuned as voicecli tunes it) and decoder."""
    tuning.install()
    encoder, decoder = OpusEncoder(), OpusDecoder()
    out: list[Pcm] = []
    for pts in range(0, pcm.shape[0] - 959, 960):
        frame = av.AudioFrame.from_ndarray(
            pcm[pts : pts + 960].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts, frame.time_base = 48000, pts, fractions.Fraction(1, 48000)
        packets, timestamp = encoder.encode(frame)
        for packet in packets:
            for decoded in decoder.decode(JitterFrame(data=packet, timestamp=timestamp)):
                assert isinstance(decoded, av.AudioFrame)
                out.append(dsp.to_mono(decoded.to_ndarray(), 2))
    return np.concatenate(out)


def noise_bursts(seed: int, count: int = 8) -> Pcm:
    """Speech-like rhythm: Hann-shaped noise bursts of 80-300 ms with 40-200 ms gaps."""
    rng = np.random.default_rng(seed)
    parts: list[Pcm] = []
    for _ in range(count):
        n = dsp.ms_to_samples(float(rng.integers(80, 300)))
        burst = rng.normal(0, 6000, n) * np.hanning(n)
        parts += [
            np.clip(burst, -32768, 32767).astype(np.int16),
            dsp.silence(int(rng.integers(40, 200))),
        ]
    return np.concatenate(parts)


def dominant_hz(pcm: Pcm, rate: int = 48000) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(pcm.shape[0], 1 / rate)[int(np.argmax(spectrum))])


def test_ms_to_samples_and_silence() -> None:
    assert dsp.ms_to_samples(20) == 960
    assert dsp.ms_to_samples(1000, 16000) == 16000
    quiet = dsp.silence(250, 16000)
    assert quiet.dtype == np.int16 and quiet.shape == (4000,) and not quiet.any()


def test_tone_has_the_asked_pitch_length_and_level() -> None:
    beep = dsp.tone(440, 1000, dbfs=-12.0)
    assert beep.dtype == np.int16 and beep.shape == (48000,)
    assert dominant_hz(beep) == pytest.approx(440, abs=1)
    assert dsp.peak_dbfs(beep) == pytest.approx(-12.0, abs=0.05)
    assert dsp.rms_dbfs(beep) == pytest.approx(-15.05, abs=0.1)  # a sine's RMS is peak - 3 dB


def test_tone_fades_in_and_out_without_a_click() -> None:
    beep = dsp.tone(1000, 200, dbfs=0.0)
    first_ms, last_ms = beep[:48].astype(np.int32), beep[-48:].astype(np.int32)
    # A hard start would jump straight to near full scale; the 5 ms ramp stays low for 1 ms.
    assert np.abs(first_ms).max() < 0.15 * 32767
    assert np.abs(last_ms).max() < 0.15 * 32767
    assert abs(int(beep[0])) <= 1 and abs(int(beep[-1])) < 50


def test_tone_shorter_than_the_fades_still_works() -> None:
    assert dsp.tone(440, 4).shape == (192,)


def test_to_mono_of_identical_channels_is_exact() -> None:
    left = dsp.tone(440, 20)
    packed = np.stack([left, left], axis=1).reshape(1, -1)  # aiortc's (1, 1920) packed s16
    assert packed.shape == (1, 1920)
    np.testing.assert_array_equal(dsp.to_mono(packed, 2), left)


def test_to_mono_averages_differing_channels_without_overflow() -> None:
    packed = np.array([32767, 32767, -32768, -32768, 1000, 3000, -32768, 32767], dtype=np.int16)
    np.testing.assert_array_equal(dsp.to_mono(packed, 2), [32767, -32768, 2000, 0])


def test_to_mono_rejects_a_partial_frame() -> None:
    with pytest.raises(ValueError, match="whole number"):
        dsp.to_mono(np.zeros(5, dtype=np.int16), 2)


def test_to_mono_refuses_float_samples() -> None:
    with pytest.raises(ValueError, match="int16"):
        dsp.to_mono(np.zeros(4, dtype=np.float32), 2)


def test_resample_keeps_pitch_level_and_timing() -> None:
    source = dsp.tone(440, 1000, rate=16000)
    up = dsp.resample(source, 16000, 48000)
    assert up.shape == (48000,)
    assert dsp.rms_dbfs(up) == pytest.approx(dsp.rms_dbfs(source), abs=0.1)
    r, lag = dsp.normalized_xcorr_peak(dsp.tone(440, 1000), up, max_lag_samples=48)
    assert r > 0.999 and lag == 0


def test_resample_same_rate_is_an_independent_copy() -> None:
    source = dsp.tone(440, 20)
    copy = dsp.resample(source, 48000, 48000)
    copy[:] = 0
    assert source.any()


@pytest.mark.parametrize("chunk", [1, 441, 960, 22050])
def test_streaming_resampler_matches_one_shot(chunk: int) -> None:
    rng = np.random.default_rng(0)
    source = rng.normal(0, 3000, 22050).astype(np.int16)
    resampler = dsp.Resampler(22050, 48000)
    pieces = [resampler.push(source[i : i + chunk]) for i in range(0, source.shape[0], chunk)]
    streamed = np.concatenate([*pieces, resampler.flush()])
    np.testing.assert_array_equal(streamed, dsp.resample(source, 22050, 48000))
    assert streamed.shape == (48000,)


def test_streaming_resampler_refuses_audio_after_flush() -> None:
    resampler = dsp.Resampler(16000, 48000)
    resampler.flush()
    with pytest.raises(RuntimeError, match="after flush"):
        resampler.push(dsp.tone(440, 20, rate=16000))


def test_levels_of_silence_are_the_floor_not_minus_infinity() -> None:
    assert dsp.rms_dbfs(dsp.silence(100)) == dsp.SILENCE_FLOOR_DBFS
    assert dsp.peak_dbfs(np.zeros(0, dtype=np.int16)) == dsp.SILENCE_FLOOR_DBFS
    one_lsb_in_a_second = dsp.silence(1000)
    one_lsb_in_a_second[0] = 1
    assert dsp.rms_dbfs(one_lsb_in_a_second) == dsp.SILENCE_FLOOR_DBFS  # -137 dB, clamped


def test_full_scale_levels() -> None:
    square = np.tile(np.array([32767, -32768], dtype=np.int16), 100)
    assert dsp.rms_dbfs(square) == pytest.approx(0.0, abs=0.001)
    assert dsp.peak_dbfs(np.array([-32768], dtype=np.int16)) == 0.0


def test_xcorr_finds_a_delay_either_way() -> None:
    source = noise_bursts(1)
    late = np.concatenate([dsp.silence(10), source])  # 480 samples late
    r, lag = dsp.normalized_xcorr_peak(source, late)
    assert r == pytest.approx(1.0) and lag == 480
    r, lag = dsp.normalized_xcorr_peak(late, source)
    assert r == pytest.approx(1.0) and lag == -480


def test_xcorr_lag_search_can_be_limited() -> None:
    source = noise_bursts(1)
    late = np.concatenate([dsp.silence(10), source])
    r, lag = dsp.normalized_xcorr_peak(source, late, max_lag_samples=100)
    assert r < 0.2 and abs(lag) <= 100


def test_xcorr_scores_unrelated_inverted_and_silent_audio_low() -> None:
    source = noise_bursts(1)
    assert dsp.normalized_xcorr_peak(source, noise_bursts(2))[0] < 0.1
    assert dsp.normalized_xcorr_peak(source, -source)[0] < 0.1
    assert dsp.normalized_xcorr_peak(source, dsp.silence(100)) == (0.0, 0)


def test_a_tone_through_opus_still_matches_its_waveform() -> None:
    source = dsp.tone(440, 1000)
    heard = opus_round_trip(source)
    assert dsp.normalized_xcorr_peak(source, heard)[0] > 0.99  # measured 0.9985
    assert dsp.normalized_xcorr_peak(dsp.tone(660, 1000), heard)[0] < 0.05


def test_speechlike_audio_through_opus_matches_by_envelope() -> None:
    source = noise_bursts(1)
    heard = opus_round_trip(source)
    r, lag = dsp.envelope_correlation(source, heard)
    assert r > 0.95  # measured 0.986
    assert abs(lag - OPUS_DELAY_SAMPLES) <= 480  # within one 10 ms envelope window
    assert dsp.envelope_correlation(noise_bursts(2), heard)[0] < 0.5  # measured 0.24


def test_opus_silence_decodes_to_near_silence() -> None:
    # With our encoder tuning (FEC at 32 kbit/s) silence decodes to a -84 dBFS peak, not exact
    # zeros (aiortc's defaults give zeros); far below anything the VAD or a listener would notice.
    assert dsp.peak_dbfs(opus_round_trip(dsp.silence(1000))) < -80
