"""Each fault switch of `voicecli serve` does what a client's resilience tests will rely on."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest

from tests.integration.conftest import connected, scripted, serve, user_text
from voicecli.audio.dsp import silence, tone
from voicecli.server.faults import ServeFaults
from voicecli.testing.offerer import Offerer, SignalingError

pytestmark = pytest.mark.integration


async def test_drop_after_closes_the_peer_connection() -> None:
    async with serve(faults=ServeFaults(drop_after_s=0.5)) as server, connected(server) as client:
        started = time.perf_counter()
        await client.wait_closed(5)
        waited = time.perf_counter() - started
    assert 0.2 < waited < 2.0
    assert client.channel_closed.is_set()


async def test_drop_on_an_event_type() -> None:
    async with (
        serve(faults=ServeFaults(drop_on="response.create")) as server,
        connected(server) as client,
    ):
        client.send({"type": "response.create"})
        await client.wait_closed(5)
    assert "response.created" not in client.types()


async def test_silent_drop_stops_rtp_but_leaves_the_connection_up() -> None:
    faults = ServeFaults(drop_after_s=0.5, drop_silently=True)
    async with serve(faults=faults) as server, connected(server) as client:
        await asyncio.sleep(1.0)
        frames_then = len(client.audio_in)
        await asyncio.sleep(1.0)
        frames_later = len(client.audio_in)
        state = client.pc.connectionState
    assert frames_then > 0
    assert frames_later == frames_then, "no RTP after the silent drop"
    assert state == "connected", "nothing tells the client: only its liveness check can"


async def test_max_session_sends_session_expired_then_closes() -> None:
    async with serve(faults=ServeFaults(max_session_s=0.5)) as server, connected(server) as client:
        error = (await client.wait_for("error", 5))["error"]
        await client.wait_closed(5)
    assert error["code"] == "session_expired"
    assert error["message"] == "Your session hit the maximum duration of 60 minutes."


@pytest.mark.parametrize(
    ("status", "code"), [(401, "invalid_api_key"), (429, "insufficient_quota"), (500, None)]
)
async def test_forced_call_failures_then_success(status: int, code: str | None) -> None:
    faults = ServeFaults(fail_calls=status, fail_calls_count=1)
    async with serve(faults=faults) as server:
        first = Offerer(server.base_url)
        with pytest.raises(SignalingError) as failure:
            await first.connect()
        await first.close()
        async with connected(server) as second:
            assert second.call_id is not None
    assert failure.value.status == status
    assert json.loads(failure.value.body)["error"]["code"] == code


async def test_answer_delay() -> None:
    async with (
        serve(faults=ServeFaults(answer_delay_ms=300)) as server,
        connected(server) as client,
    ):
        took = (client.timings.session_created_s or 0) - client.timings.offer_s
    assert took >= 0.3


async def test_rtp_loss_drops_about_that_share_of_packets() -> None:
    async def measured_loss(percent: float) -> float:
        faults = ServeFaults(rtp_loss_percent=percent, seed=7)
        async with serve(faults=faults) as server, connected(server) as client:
            await asyncio.sleep(2.5)  # about 125 frames
            return client.loss_ratio()

    assert await measured_loss(0) == 0.0
    assert 0.15 < await measured_loss(30) < 0.45


async def test_scripted_drop_and_error_steps(tmp_path: Path) -> None:
    script = """
    [[step]]
    on = "text"
    match = "fail"
    [[step.reply]]
    error = "server_error"
    message = "The model had a bad day."
    type = "server_error"
    [[step]]
    on = "text"
    match = "drop"
    [[step.reply]]
    drop = true
    """
    async with serve(responder=scripted(tmp_path, script)) as server, connected(server) as client:
        client.send(user_text("please fail"))
        client.send({"type": "response.create"})
        error = (await client.wait_for("error"))["error"]
        done = (await client.wait_for("response.done"))["response"]
        client.send(user_text("now drop"))
        client.send({"type": "response.create"})
        await client.wait_closed(5)
    assert (error["type"], error["code"]) == ("server_error", "server_error")
    assert done["status"] == "failed"
    assert done["status_details"]["error"]["message"] == "The model had a bad day."


async def test_echo_turn_completes_over_a_lossy_downlink() -> None:
    """Loss on the downlink (server → client RTP) still lets a whole echo turn complete."""
    async with (
        serve(faults=ServeFaults(rtp_loss_percent=10, seed=3)) as server,
        connected(server) as client,
    ):
        client.mic.push(np.concatenate([tone(400, 600), silence(100)]))
        await client.wait_for("output_audio_buffer.stopped")
    assert client.types().count("response.done") == 1
