"""voicecli.server.playback.OutputBuffer: what the RTP track plays, what the session learns."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecli.server.playback import FRAME_SAMPLES, OutputBuffer
from voicecli.server.responders import Pcm


def ramp(start: int, count: int) -> Pcm:
    """Distinct, recognisable samples: start, start+1, …"""
    pcm: Pcm = (np.arange(start, start + count) % 30000).astype(np.int16)
    return pcm


def test_a_frame_is_20ms_at_48khz() -> None:
    assert FRAME_SAMPLES == 960


def test_empty_buffer_plays_silence() -> None:
    buffer = OutputBuffer()
    frame = buffer.pull()
    assert frame.dtype == np.int16
    assert frame.shape == (960,)
    assert not frame.any()
    assert buffer.playing() is None
    assert buffer.take_drained() == []


def test_audio_comes_out_in_order_across_chunks_in_960_sample_frames() -> None:
    buffer = OutputBuffer()
    sizes = [100, 1500, 7, 960, 2000]
    audio = ramp(1, sum(sizes))
    start = 0
    for size in sizes:
        buffer.enqueue("resp_1", "item_1", audio[start : start + size])
        start += size
    pulled = []
    for _ in range(6):
        frame = buffer.pull()
        assert frame.shape == (960,)
        pulled.append(frame)
    out = np.concatenate(pulled)
    assert np.array_equal(out[: audio.size], audio)
    assert not out[audio.size :].any()  # the last frame is padded with silence


def test_partial_frame_is_padded_and_next_response_follows() -> None:
    buffer = OutputBuffer()
    buffer.enqueue("resp_1", "item_1", ramp(1, 500))
    buffer.enqueue("resp_2", "item_2", ramp(1000, 700))
    first = buffer.pull()
    # The second response's audio follows straight on; nothing is lost in between.
    assert np.array_equal(first[:500], ramp(1, 500))
    assert np.array_equal(first[500:], ramp(1000, 460))
    assert buffer.playing() == "resp_2"
    second = buffer.pull()
    assert np.array_equal(second[:240], ramp(1460, 240))
    assert not second[240:].any()


def test_empty_chunks_are_ignored() -> None:
    buffer = OutputBuffer()
    buffer.enqueue("resp_1", "item_1", np.zeros(0, dtype=np.int16))
    assert buffer.playing() is None
    buffer.finish("resp_1")
    assert buffer.take_drained() == ["resp_1"]


def test_played_ms_counts_what_was_pulled() -> None:
    buffer = OutputBuffer()
    buffer.enqueue("resp_1", "item_a", ramp(0, 48_000))  # 1 s
    buffer.enqueue("resp_1", "item_b", ramp(0, 4_800))  # 100 ms
    assert buffer.played_ms("item_a") == 0
    for _ in range(25):
        buffer.pull()
    assert buffer.played_ms("item_a") == 500
    assert buffer.played_ms("item_b") == 0
    for _ in range(30):
        buffer.pull()
    assert buffer.played_ms("item_a") == 1000
    assert buffer.played_ms("item_b") == 100
    assert buffer.played_ms("never_seen") == 0


def test_drained_only_after_finish_and_all_audio_pulled_finish_first() -> None:
    buffer = OutputBuffer()
    buffer.enqueue("resp_1", "item_1", ramp(0, 1500))
    buffer.finish("resp_1")
    assert buffer.take_drained() == []
    buffer.pull()
    assert buffer.take_drained() == []  # 540 samples still to play
    buffer.pull()
    assert buffer.take_drained() == ["resp_1"]
    buffer.pull()
    assert buffer.take_drained() == []  # exactly once


def test_drained_only_after_finish_and_all_audio_pulled_pull_first() -> None:
    buffer = OutputBuffer()
    buffer.enqueue("resp_1", "item_1", ramp(0, 960))
    buffer.pull()
    assert buffer.take_drained() == []  # all played, but more audio may still come
    buffer.enqueue("resp_1", "item_1", ramp(0, 10))
    buffer.pull()
    assert buffer.take_drained() == []
    buffer.finish("resp_1")
    assert buffer.take_drained() == ["resp_1"]
    assert buffer.take_drained() == []


def test_drained_is_per_response() -> None:
    buffer = OutputBuffer()
    buffer.enqueue("resp_1", "item_1", ramp(0, 960))
    buffer.enqueue("resp_2", "item_2", ramp(0, 960))
    buffer.finish("resp_1")
    buffer.finish("resp_2")
    buffer.pull()
    assert buffer.take_drained() == ["resp_1"]
    buffer.pull()
    assert buffer.take_drained() == ["resp_2"]


def test_clear_returns_the_playing_response_and_drops_its_audio() -> None:
    buffer = OutputBuffer()
    buffer.enqueue("resp_1", "item_1", ramp(1, 5000))
    buffer.pull()
    assert buffer.playing() == "resp_1"
    assert buffer.clear() == "resp_1"
    assert buffer.playing() is None
    assert not buffer.pull().any()
    assert buffer.played_ms("item_1") == 20  # what was heard before the cut
    assert buffer.clear() is None  # nothing left to cut


def test_a_cleared_response_is_never_reported_drained() -> None:
    buffer = OutputBuffer()
    buffer.enqueue("resp_1", "item_1", ramp(0, 5000))
    buffer.finish("resp_1")
    buffer.pull()
    assert buffer.clear() == "resp_1"
    for _ in range(5):
        buffer.pull()
    assert buffer.take_drained() == []


def test_a_response_cleared_before_finish_is_never_reported_drained() -> None:
    # The order of a VAD barge-in in CallSession._speech_started: output cleared first
    # (-> output_audio_buffer.cleared), then the run is cancelled, whose finish() calls
    # OutputBuffer.finish(). The real service ends such a response with `cleared` only.
    buffer = OutputBuffer()
    buffer.enqueue("resp_1", "item_1", ramp(0, 5000))
    buffer.pull()
    assert buffer.clear() == "resp_1"
    buffer.finish("resp_1")
    buffer.pull()
    assert buffer.take_drained() == []


def test_a_new_response_after_a_clear_drains_normally() -> None:
    buffer = OutputBuffer()
    buffer.enqueue("resp_1", "item_1", ramp(0, 5000))
    buffer.pull()
    assert buffer.clear() == "resp_1"
    buffer.enqueue("resp_2", "item_2", ramp(0, 100))
    buffer.finish("resp_2")
    buffer.pull()
    assert buffer.take_drained() == ["resp_2"]


def test_clear_keeps_an_already_drained_report() -> None:
    buffer = OutputBuffer()
    buffer.enqueue("resp_1", "item_1", ramp(0, 960))
    buffer.finish("resp_1")
    buffer.pull()
    buffer.enqueue("resp_2", "item_2", ramp(0, 960))
    assert buffer.clear() == "resp_2"
    assert buffer.take_drained() == ["resp_1"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=3000), max_size=12),
    st.integers(min_value=1, max_value=3),
)
def test_pulls_are_the_enqueued_audio_then_silence(sizes: list[int], extra: int) -> None:
    buffer = OutputBuffer()
    chunks = []
    start = 1
    for index, size in enumerate(sizes):
        chunk = ramp(start, size)
        start += size
        chunks.append(chunk)
        buffer.enqueue(f"resp_{index % 3}", f"item_{index}", chunk)
    audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    frames = -(-audio.size // FRAME_SAMPLES) + extra
    out = np.concatenate([buffer.pull() for _ in range(frames)])
    assert out.size == frames * FRAME_SAMPLES
    assert np.array_equal(out[: audio.size], audio)
    assert not out[audio.size :].any()
    assert buffer.playing() is None
    total_ms = sum(buffer.played_ms(f"item_{i}") for i in range(len(sizes)))
    assert abs(total_ms - audio.size * 1000 // 48000) <= len(sizes)
