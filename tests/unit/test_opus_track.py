"""OpusTrack: the outgoing audio, encoded on the loop and handed to aiortc as packets."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest
from aiortc.codecs import get_encoder
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from voicecli.audio.dsp import normalized_xcorr_peak, rms_dbfs, to_mono
from voicecli.audio.formats import FRAME_SAMPLES, RATE_HZ, Pcm
from voicecli.rtc.tracks import OpusTrack, _opus_encoder, audio_frame

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=96)


class Frames(MediaStreamTrack):
    """A finite source of 20 ms frames with pts starting at ``first_pts``."""

    kind = "audio"

    def __init__(self, pcm: Pcm, first_pts: int = 0) -> None:
        super().__init__()
        self._blocks = [pcm[i : i + FRAME_SAMPLES] for i in range(0, pcm.size, FRAME_SAMPLES)]
        self._pts = first_pts

    async def recv(self) -> av.AudioFrame:
        if not self._blocks or self.readyState != "live":
            raise MediaStreamError
        frame = audio_frame(self._blocks.pop(0), self._pts)
        self._pts += FRAME_SAMPLES
        return frame


def tone(seconds: float, hz: float = 440.0) -> Pcm:
    t = np.arange(int(seconds * RATE_HZ)) / RATE_HZ
    return (8000 * np.sin(2 * np.pi * hz * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.int16)


async def packets_of(track: OpusTrack) -> list[av.Packet]:
    out = []
    with pytest.raises(MediaStreamError):
        while True:
            out.append(await track.recv())
    return out


def decoded(packets: list[av.Packet]) -> Pcm:
    decoder = OpusDecoder()  # what a receiving aiortc peer (our serve) decodes with
    frames = [decoder.decode(JitterFrame(bytes(p), int(p.pts or 0))) for p in packets]
    return np.concatenate([to_mono(f.to_ndarray(), 2) for batch in frames for f in batch])


async def test_one_packet_per_frame_stamped_with_the_sources_sample_count() -> None:
    track = OpusTrack(Frames(tone(0.2), first_pts=96000))
    packets = await packets_of(track)
    assert [p.pts for p in packets] == [96000 + i * FRAME_SAMPLES for i in range(10)]
    assert {p.time_base for p in packets} == {fractions.Fraction(1, RATE_HZ)}


async def test_aiortc_sends_the_packets_as_they_are_with_our_timestamps() -> None:
    # The sender's pre-encoded path: encoder.pack(packet), no worker thread, no re-encode.
    packets = await packets_of(OpusTrack(Frames(tone(0.06))))
    encoder = get_encoder(OPUS)
    for packet in packets:
        payloads, timestamp = encoder.pack(packet)
        assert payloads == [bytes(packet)]
        assert timestamp == packet.pts


async def test_what_is_sent_decodes_to_the_source_audio() -> None:
    source = tone(1.0)
    packets = await packets_of(OpusTrack(Frames(source)))
    heard = decoded(packets)
    r, _lag = normalized_xcorr_peak(source, heard)
    assert r > 0.9, r


async def test_mono_at_about_32_kbit_per_second() -> None:
    noise = np.random.default_rng(2).integers(-12000, 12000, RATE_HZ, dtype=np.int16)
    packets = await packets_of(OpusTrack(Frames(noise)))
    assert 24_000 < sum(p.size for p in packets) * 8 < 40_000
    assert all(bytes(p)[0] & 0x04 == 0 for p in packets)  # TOC byte: the stereo flag is clear


async def test_stopping_it_stops_the_source() -> None:
    source = Frames(tone(0.1))
    track = OpusTrack(source)
    track.stop()
    assert source.readyState == "ended"
    with pytest.raises(MediaStreamError):
        await track.recv()


def test_libopus_takes_every_option_we_set() -> None:
    codec = _opus_encoder()
    names = {o.name for o in codec.supported_options.private}
    assert {"fec", "packet_loss", "application"} <= names  # unknown names would be ignored
    assert codec.encode(audio_frame(np.zeros(FRAME_SAMPLES, dtype=np.int16), 0))
    assert codec.is_open
    assert codec.options == {}  # after opening, PyAV keeps only what the codec did NOT consume
    assert codec.bit_rate == 32000


async def test_mono_keeps_the_level() -> None:
    # aiortc's encoder upmixes mono to stereo, -3 dB a channel; ours sends mono.
    source = tone(1.0)
    packets = await packets_of(OpusTrack(Frames(source)))
    heard = decoded(packets)
    assert rms_dbfs(heard) == pytest.approx(rms_dbfs(source), abs=0.5)
