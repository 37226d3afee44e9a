"""The HTTP face of `voicecli serve`: answer shape, status codes and the real error bodies."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from tests.integration.conftest import connected, serve
from voicecli.rtc import tuning
from voicecli.server.keys import KeyStore, KeyVerdict

pytestmark = pytest.mark.integration

KEY = "sk-test-accepted-0123456789"


async def offer_sdp(audio: bool = True) -> str:
    tuning.install()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.createDataChannel("oai-events")
    if audio:
        pc.addTransceiver("audio", direction="sendrecv")
    with tuning.loopback_ice():
        await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


async def post(url: str, *, key: str | None = KEY, **kwargs: Any) -> tuple[int, Any, str]:
    headers = dict(kwargs.pop("headers", {}))
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with aiohttp.ClientSession() as http, http.post(url, headers=headers, **kwargs) as r:
        return r.status, r.headers, await r.text()


def multipart(sdp: str, session: dict[str, Any] | None = None) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("sdp", sdp, content_type="application/sdp")
    if session is not None:
        form.add_field("session", json.dumps(session), content_type="application/json")
    return form


async def test_answer_looks_like_the_real_one() -> None:
    async with serve(keys=KeyStore.of([KEY], open=False)) as server:
        status, headers, body = await post(
            f"{server.base_url}/realtime/calls", data=multipart(await offer_sdp())
        )
    assert status == 201
    assert headers["Content-Type"] == "application/sdp"
    assert re.fullmatch(r"/v1/realtime/calls/rtc_[0-9a-f]{32}", headers["Location"])
    candidates = [line for line in body.splitlines() if line.startswith("a=candidate:")]
    assert candidates, "the answer carries its candidates (no trickle)"
    assert all(" 127.0.0.1 " in c and " typ host" in c for c in candidates)
    assert "a=rtpmap:96 opus/48000/2" in body
    assert re.search(r"a=fmtp:96 .*minptime=10", body) and "useinbandfec=1" in body
    assert "m=application" in body and "webrtc-datachannel" in body


async def test_offer_without_audio_is_invalid_offer() -> None:
    async with serve() as server:
        status, _, body = await post(
            f"{server.base_url}/realtime/calls",
            data=await offer_sdp(audio=False),
            headers={"Content-Type": "application/sdp"},
        )
    assert status == 400
    assert json.loads(body) == {
        "error": {
            "message": "Invalid SDP offer. Offer did not have an audio media section.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_offer",
        }
    }


async def test_unparsable_offer_is_invalid_offer() -> None:
    async with serve() as server:
        status, _, body = await post(
            f"{server.base_url}/realtime/calls",
            data="hello",
            headers={"Content-Type": "application/sdp"},
        )
    assert status == 400
    assert json.loads(body)["error"]["code"] == "invalid_offer"


async def test_wrong_key_is_401_with_the_service_body() -> None:
    async with serve(keys=KeyStore.of([KEY], open=False)) as server:
        status, _, body = await post(
            f"{server.base_url}/realtime/calls",
            key="sk-wrong-key-000000000000",
            data=multipart("v=0"),
        )
    error = json.loads(body)["error"]
    assert status == 401
    assert error["code"] == "invalid_api_key" and error["type"] == "invalid_request_error"
    assert "Incorrect API key provided" in error["message"]
    assert "sk-wrong-key-000000000000" not in body, "the key is masked in the message"


async def test_missing_key_is_401() -> None:
    async with (
        serve() as server,
        aiohttp.ClientSession() as http,
        http.get(f"{server.base_url}/models") as reply,
    ):
        status, body = reply.status, await reply.text()
    assert status == 401
    assert "didn't provide an API key" in json.loads(body)["error"]["message"]


async def test_wrong_content_type_is_415() -> None:
    async with serve() as server:
        status, _, body = await post(
            f"{server.base_url}/realtime/calls",
            data="{}",
            headers={"Content-Type": "application/json"},
        )
    assert status == 415
    assert json.loads(body)["error"]["code"] == "unsupported_content_type"


async def test_beta_session_part_is_refused_like_the_service() -> None:
    async with serve() as server:
        form = multipart(await offer_sdp(), {"type": "realtime", "modalities": ["text"]})
        status, _, body = await post(f"{server.base_url}/realtime/calls", data=form)
    assert status == 400
    error = json.loads(body)["error"]
    assert (error["code"], error["param"]) == ("unknown_parameter", "session.modalities")


async def test_session_part_shapes_the_session() -> None:
    session = {
        "type": "realtime",
        "instructions": "Be brief.",
        "audio": {"output": {"voice": "cedar"}},
    }
    async with serve() as server, connected(server, session=session) as client:
        created = (await client.wait_for("session.created"))["session"]
    assert created["instructions"] == "Be brief."
    assert created["audio"]["output"]["voice"] == "cedar"
    assert created["audio"]["input"]["turn_detection"]["type"] == "server_vad"


async def test_models_lists_realtime_models() -> None:
    async with (
        serve() as server,
        aiohttp.ClientSession() as http,
        http.get(f"{server.base_url}/models", headers={"Authorization": f"Bearer {KEY}"}) as reply,
    ):
        body = await reply.json()
    assert reply.status == 200
    assert "gpt-realtime-2.1" in [m["id"] for m in body["data"]]


async def test_ephemeral_key_is_minted_used_and_expires() -> None:
    now = [1_000_000.0]
    keys = KeyStore(standard=frozenset([KEY]), clock=lambda: now[0])
    async with serve(keys=keys) as server:
        status, _, body = await post(
            f"{server.base_url}/realtime/client_secrets",
            json={
                "expires_after": {"anchor": "created_at", "seconds": 60},
                "session": {"type": "realtime", "instructions": "From the token."},
            },
        )
        secret = json.loads(body)
        assert status == 200 and secret["value"].startswith("ek_")
        assert secret["expires_at"] == 1_000_060
        async with connected(server, key=secret["value"], multipart=False) as client:
            created = (await client.wait_for("session.created"))["session"]
        assert created["instructions"] == "From the token."
        now[0] += 61
        assert keys.check(secret["value"]) is KeyVerdict.EXPIRED
        status, _, body = await post(
            f"{server.base_url}/realtime/calls",
            key=secret["value"],
            data=await offer_sdp(),
            headers={"Content-Type": "application/sdp"},
        )
    assert status == 401
    assert json.loads(body)["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("seconds", [5, 7201, "600"])
async def test_client_secret_lifetime_is_checked(seconds: object) -> None:
    async with serve() as server:
        status, _, body = await post(
            f"{server.base_url}/realtime/client_secrets",
            json={"expires_after": {"seconds": seconds}},
        )
    assert status == 400
    assert json.loads(body)["error"]["param"] == "expires_after.seconds"


async def test_ephemeral_key_cannot_mint_more_keys() -> None:
    async with serve(keys=KeyStore.of([KEY], open=False)) as server:
        _, _, body = await post(f"{server.base_url}/realtime/client_secrets", json={})
        ephemeral = json.loads(body)["value"]
        status, _, _ = await post(
            f"{server.base_url}/realtime/client_secrets", key=ephemeral, json={}
        )
    assert status == 401


async def test_azure_paths_and_api_key_header() -> None:
    async with serve(keys=KeyStore.of([KEY], open=False)) as server:
        azure = server.base_url.replace("/v1", "/openai/v1")
        status, headers, _ = await post(
            f"{azure}/realtime/calls",
            key=None,
            headers={"api-key": KEY},
            data=multipart(await offer_sdp()),
        )
    assert status == 201
    assert headers["Location"].startswith("/v1/realtime/calls/rtc_")


async def test_hangup_closes_the_call() -> None:
    async with serve() as server, connected(server) as client:
        assert client.call_id in server.endpoints.calls
        assert await client.hangup() == 200
        await client.wait_closed(5)
        assert client.call_id not in server.endpoints.calls
        status, _, _ = await post(f"{server.base_url}/realtime/calls/rtc_unknown/hangup")
    assert status == 404
