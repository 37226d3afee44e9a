"""The one internal audio format: 48 kHz mono int16 (WebRTC Opus's native rate), 20 ms frames."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]
RATE_HZ = 48_000
FRAME_MS = 20
FRAME_SAMPLES = RATE_HZ * FRAME_MS // 1000
