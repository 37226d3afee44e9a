"""The WebSocket transport's pure parts: the wire audio format, mic batches, the ledger, errors."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from voicecli.audio.dsp import normalized_xcorr_peak, resample, tone
from voicecli.audio.formats import RATE_HZ
from voicecli.errors import AuthError, ServiceError
from voicecli.transports import pcm16
from voicecli.transports.pcm16 import WIRE_RATE_HZ, ServerWire
from voicecli.transports.websocket import AudioLedger, MicBatcher, handshake_error


def test_wire_audio_is_little_endian_pcm16_in_base64() -> None:
    payload = pcm16.encode(np.array([1, -2, 0x1234], dtype=np.int16))
    assert base64.b64decode(payload) == b"\x01\x00\xfe\xff\x34\x12"
    assert pcm16.decode(payload).tolist() == [1, -2, 0x1234]


@pytest.mark.parametrize("payload", ["not base64!", base64.b64encode(b"\x01\x02\x03").decode()])
def test_payloads_that_are_not_whole_samples_are_refused(payload: str) -> None:
    with pytest.raises(ValueError):
        pcm16.decode(payload)


def test_the_server_converts_each_chunk_with_exact_sample_counts() -> None:
    chunk = tone(440, 100)  # one generation chunk, 100 ms at 48 kHz
    wire = ServerWire()
    sent = pcm16.decode(wire.encode(chunk))
    assert sent.size == chunk.size // 2  # what the server counts as sent is what arrives
    assert wire.decode(pcm16.encode(sent)).size == chunk.size


def test_mic_audio_goes_out_in_whole_batches_of_the_same_sound() -> None:
    batcher = MicBatcher(batch_ms=40)
    sound = tone(1000, 1000)
    payloads = [p for i in range(0, sound.size, 960) for p in batcher.push(sound[i : i + 960])]
    batches = [pcm16.decode(p) for p in payloads]
    assert {b.size for b in batches} == {WIRE_RATE_HZ * 40 // 1000}
    sent = np.concatenate(batches)
    # All but what the resampler and the unfinished batch still hold (< 40 ms + a few samples).
    assert WIRE_RATE_HZ - sent.size < WIRE_RATE_HZ * 41 // 1000
    r, _ = normalized_xcorr_peak(resample(sound, RATE_HZ, WIRE_RATE_HZ)[: sent.size], sent, 40)
    assert r > 0.99


@given(st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=20))
def test_batches_do_not_depend_on_how_the_mic_chunks_its_audio(sizes: list[int]) -> None:
    sound = tone(700, sum(sizes) / 48)[: sum(sizes)]
    by_frames, by_sizes = MicBatcher(40), MicBatcher(40)
    whole = by_frames.push(sound)
    parts, start = [], 0
    for size in sizes:
        parts += by_sizes.push(sound[start : start + size])
        start += size
    assert parts == whole


def test_the_ledger_finds_the_item_being_heard_when_playout_is_cut() -> None:
    ledger = AudioLedger()
    ledger.received("item_a", 24_000)  # 1 s
    ledger.received("item_b", 12_000)  # 0.5 s, then 0.25 s more
    ledger.received("item_b", 6_000)
    assert ledger.received_ms("item_b") == 750
    assert ledger.received_ms("item_nope") is None
    # 0.5 s at 48 kHz was still queued: 250 ms of item_b were heard.
    assert ledger.heard(24_000) == ("item_b", 250)
    # 0.75 s queued: item_b was not heard at all (item_a entirely); 1 s: 750 ms of item_a.
    assert ledger.heard(36_000) == ("item_b", 0)
    assert ledger.heard(48_000) == ("item_a", 750)
    assert ledger.heard(RATE_HZ * 2) == ("item_a", 0), "never below the start"
    assert ledger.heard(0) is None, "everything received was heard: nothing to truncate"


def refused(status: int, body: object, reason: str = "Unauthorized") -> InvalidStatus:
    raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return InvalidStatus(Response(status, reason, Headers(), raw))


def test_a_refused_handshake_keeps_the_services_message_without_the_key() -> None:
    body = {
        "error": {
            "message": "Incorrect API key provided: sk-abcdefghijklmnop1234. You can find...",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    error = handshake_error(refused(401, body), "api.example.com")
    assert isinstance(error, AuthError)
    assert "api.example.com refused the key (401): Incorrect API key provided" in error.message
    assert "abcdefghijklmnop" not in error.message


def test_other_refusals_are_service_errors_with_status_code_and_hint() -> None:
    body = {"error": {"message": "You exceeded your quota.", "code": "insufficient_quota"}}
    error = handshake_error(refused(429, body, "Too Many Requests"), "h")
    assert isinstance(error, ServiceError)
    assert (error.status, error.code) == (429, "insufficient_quota")
    assert error.hint is not None and "billing" in error.hint
    plain = handshake_error(refused(404, b"<html>nope</html>", "Not Found"), "h")
    assert plain.message == "h answered 404: Not Found"
