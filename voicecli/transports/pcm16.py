"""Audio inside Realtime WebSocket events: base64 of 24 kHz mono PCM16, little-endian.

The only PCM format the service allows on the wire is ``audio/pcm`` at 24000 Hz
(realtime-protocol.md §7); voicecli's own audio is 48 kHz. Both ends of the WebSocket transport
(the client and `voicecli serve`) use these helpers.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np

from voicecli.audio.dsp import resample
from voicecli.audio.formats import RATE_HZ, Pcm

WIRE_RATE_HZ = 24_000
WIRE_FORMAT = {"type": "audio/pcm", "rate": WIRE_RATE_HZ}


def encode(pcm: Pcm) -> str:
    """24 kHz int16 samples → base64 text (little-endian, whatever the machine's order)."""
    return base64.b64encode(pcm.astype("<i2", copy=False).tobytes()).decode("ascii")


def decode(payload: str) -> Pcm:
    """Base64 text → 24 kHz int16 samples; ValueError when it is not base64 of whole samples."""
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64: {exc}") from None
    if len(raw) % 2:
        raise ValueError(f"{len(raw)} bytes is not a whole number of 16-bit samples")
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


class ServerWire:
    """`voicecli serve`'s side: each chunk converted on its own (a chunk is 100 ms of speech).

    One-shot resampling keeps the sample counts exact (n at 48 kHz ↔ n/2 at 24 kHz), so what the
    server counts as sent matches what a client counts as received, to the millisecond.
    """

    def encode(self, pcm: Pcm) -> str:
        return encode(resample(pcm, RATE_HZ, WIRE_RATE_HZ))

    def decode(self, payload: str) -> Pcm:
        return resample(decode(payload), WIRE_RATE_HZ, RATE_HZ)
