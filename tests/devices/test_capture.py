"""Capture on the virtual mic: what the app hears, how fast, and what happens when it goes away."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from voicecli.audio.devices import FIRST_BLOCK_S, STALL_S, Capture, resolve_device
from voicecli.audio.dsp import normalized_xcorr_peak
from voicecli.audio.formats import FRAME_SAMPLES, Pcm
from voicecli.audio.wav import read_wav_48k
from voicecli.errors import AudioError
from voicecli.testing.pulse import PulseAudio

pytestmark = pytest.mark.device

# The 48 kHz path is bit-exact (null sink -> remap source -> PortAudio, all s16 48 kHz mono);
# measured r = 1.0000. 0.9 still fails if a single 20 ms block of the speech is lost or
# duplicated (the two halves then align at different lags: r drops to about 0.5-0.8) or if the
# samples are mangled, and leaves room for the resampled path (measured r in the report).
MIN_R = 0.9


@dataclass
class Mic:
    blocks: list[tuple[Pcm, float, float]] = field(default_factory=list)  # pcm, captured, arrival
    lost: list[str] = field(default_factory=list)
    lost_at: float = 0.0
    gone: asyncio.Event = field(default_factory=asyncio.Event)

    def on_block(self, pcm: Pcm, captured_s: float) -> None:
        self.blocks.append((pcm, captured_s, time.monotonic()))

    def on_lost(self, cause: str) -> None:
        self.lost.append(cause)
        self.lost_at = time.monotonic()
        self.gone.set()

    def audio(self) -> Pcm:
        return np.concatenate([pcm for pcm, _, _ in self.blocks])


async def _capture(mic: Mic, samplerate: int | None = None) -> Capture:
    device = resolve_device("pulse", "input")
    capture = Capture(
        device, mic.on_block, mic.on_lost, asyncio.get_running_loop(), samplerate=samplerate
    )
    await capture.astart()
    return capture


async def _speak(pulse: PulseAudio, wav: Path) -> None:
    player = pulse.play_into_mic(wav)
    assert await asyncio.to_thread(player.wait) == 0


@pytest.mark.parametrize("samplerate", [None, 44100], ids=["48k", "44k1-resampled"])
async def test_capture_hears_the_speech_in_exact_20ms_blocks_at_real_time_pace(
    pulse: PulseAudio, speech: Path, samplerate: int | None
) -> None:
    mic = Mic()
    capture = await _capture(mic, samplerate)
    try:
        await asyncio.sleep(0.2)
        await _speak(pulse, speech)
        await asyncio.sleep(0.2)
    finally:
        await capture.aclose()

    assert capture.rate == (samplerate or 48000)
    assert {pcm.shape[0] for pcm, _, _ in mic.blocks} == {FRAME_SAMPLES}
    assert {pcm.dtype for pcm, _, _ in mic.blocks} == {np.dtype(np.int16)}
    arrivals = [arrival for _, _, arrival in mic.blocks]
    wall = arrivals[-1] - arrivals[0]
    audio_s = (len(mic.blocks) - 1) * 0.02
    assert abs(wall - audio_s) < 0.05 * audio_s, (wall, audio_s)  # paced by the device, not bursts
    steps = np.diff([captured for _, captured, _ in mic.blocks])
    assert statistics.median(steps) == pytest.approx(0.02, abs=0.001)
    lag_s = statistics.median(a - c for _, c, a in mic.blocks)
    assert 0 <= lag_s < 0.1, lag_s  # ADC time is before we see the block, and not by much

    r, _lag = normalized_xcorr_peak(read_wav_48k(speech), mic.audio())
    assert r > MIN_R, r
    assert mic.lost == []


async def test_a_dying_audio_server_is_reported_once_within_a_second(pulse: PulseAudio) -> None:
    mic = Mic()
    capture = await _capture(mic)
    try:
        await asyncio.sleep(0.2)
        killed = time.monotonic()
        pulse.kill()
        await asyncio.wait_for(mic.gone.wait(), 1.0)
        await asyncio.sleep(STALL_S + 0.2)  # the watchdog must not report it a second time
    finally:
        started = time.monotonic()
        await capture.aclose()
        assert time.monotonic() - started < 0.5

    assert len(mic.lost) == 1
    assert mic.lost_at - killed < 1.0
    assert "input device 'pulse'" in mic.lost[0]
    assert "audio server" in mic.lost[0]


async def test_a_mic_that_stops_delivering_is_reported_by_the_watchdog(pulse: PulseAudio) -> None:
    mic = Mic()
    capture = await _capture(mic)
    try:
        await asyncio.sleep(0.2)
        assert mic.blocks
        stalled = time.monotonic()
        pulse.suspend_mic()
        await asyncio.wait_for(mic.gone.wait(), 1.5)
    finally:
        started = time.monotonic()
        await capture.aclose()  # stream.stop() would hang here, abort()+close() must not
        closing_s = time.monotonic() - started

    assert closing_s < 0.5
    # The last block may come a few ms before `stalled` (pactl takes a moment), hence - 0.05.
    assert STALL_S - 0.05 <= mic.lost_at - stalled < STALL_S + 0.5
    assert mic.lost == [mic.lost[0]]
    assert "delivered no audio" in mic.lost[0]


async def test_aclose_is_prompt_and_idempotent_and_stops_the_blocks(pulse: PulseAudio) -> None:
    mic = Mic()
    capture = await _capture(mic)
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await capture.aclose()
    await capture.aclose()
    assert time.monotonic() - started < 0.5
    count = len(mic.blocks)
    await asyncio.sleep(0.1)
    assert count > 5
    assert len(mic.blocks) == count  # nothing after close
    assert mic.lost == []  # our own close is not a lost device


async def test_aclose_during_astart_leaves_nothing_running(pulse: PulseAudio) -> None:
    streams_before = pulse.pactl("list", "short", "source-outputs")
    mic = Mic()
    device = resolve_device("pulse", "input")
    capture = Capture(device, mic.on_block, mic.on_lost, asyncio.get_running_loop())
    opening = asyncio.create_task(capture.astart())
    await asyncio.sleep(0)  # the open is under way in its thread
    await capture.aclose()
    await opening
    await asyncio.sleep(0.2)
    assert pulse.pactl("list", "short", "source-outputs") == streams_before  # mic released
    assert mic.blocks == []
    assert mic.lost == []


async def test_an_unplugged_mic_moves_capture_to_the_fallback_and_cannot_be_reopened(
    pulse: PulseAudio,
) -> None:
    mic = Mic()
    capture = await _capture(mic)
    try:
        await asyncio.sleep(0.2)
        pulse.unload_mic()
        before = len(mic.blocks)
        await asyncio.sleep(0.6)
        # PulseAudio moves the stream to the fallback source without telling PortAudio: audio
        # keeps coming, so there is nothing to report.
        assert len(mic.blocks) - before > 20
        assert mic.lost == []
    finally:
        await capture.aclose()

    with pytest.raises(AudioError) as caught:
        await _capture(Mic())  # PULSE_SOURCE=vmic no longer exists
    assert caught.value.exit_code == 7
    assert "input device 'pulse'" in caught.value.message
    assert "failed" in caught.value.message


async def test_a_device_that_never_starts_is_reported_after_the_first_block_grace(
    pulse: PulseAudio,
) -> None:
    pulse.suspend_mic()
    mic = Mic()
    started = time.monotonic()
    capture = await _capture(mic)
    try:
        await asyncio.wait_for(mic.gone.wait(), FIRST_BLOCK_S + 1.0)
    finally:
        await capture.aclose()
    assert mic.blocks == []
    assert FIRST_BLOCK_S <= mic.lost_at - started < FIRST_BLOCK_S + 0.5
