"""Credentials per auth.mode against the real local server (and a real token-URL backend)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from voicecli.auth.credentials import (
    Credentials,
    CredentialSource,
    credential_source,
    verify_key,
)
from voicecli.config import Settings, load_settings
from voicecli.errors import EXIT_AUTH, AuthError, ConfigError, NetworkError, ServiceError
from voicecli.server.app import RunningServer, running_server
from voicecli.server.echo import EchoResponder
from voicecli.server.http import Endpoints, ServerConfig
from voicecli.server.keys import KeyStore, KeyVerdict

pytestmark = pytest.mark.integration

KEY = "sk-test-accepted-0123456789"
WRONG_KEY = "sk-test-wrong-zzzzzzzzzz9876"
PIRATE = {"type": "realtime", "instructions": "Answer like a pirate."}
TTL_S = 120


class FakeClock:
    """One clock for both sides: the server's key store and the credential cache."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_settings(**flags: object) -> Settings:
    flags.setdefault("auth.ephemeral_ttl_s", TTL_S)
    return load_settings(None, {}, flags)


@contextlib.asynccontextmanager
async def local_server(clock: FakeClock) -> AsyncIterator[RunningServer]:
    keys = KeyStore(standard=frozenset([KEY]), clock=clock)
    async with running_server(ServerConfig(responder=EchoResponder, keys=keys)) as server:
        yield server


def verdict(server: RunningServer, credentials: Credentials) -> KeyVerdict:
    return server.endpoints.config.keys.check(credentials.value)


async def status_with(credentials: Credentials) -> int:
    """What the server answers to `GET {base}/models` with these credentials' headers."""
    url = f"{credentials.base_url}/models"
    async with aiohttp.ClientSession() as http, http.get(url, headers=credentials.headers) as r:
        return r.status


# ---- direct -----------------------------------------------------------------------------------


async def test_direct_uses_the_standard_key_and_the_server_accepts_it(clock: FakeClock) -> None:
    async with local_server(clock) as server:
        source = credential_source(make_settings(**{"api.base_url": server.base_url}), KEY)

        credentials = await source.get(PIRATE)

        assert credentials.kind == "standard"
        assert credentials.value == KEY
        assert credentials.base_url == server.base_url
        assert await status_with(credentials) == 200


async def test_a_missing_key_is_an_auth_error_before_any_request() -> None:
    with pytest.raises(AuthError, match="needs an API key"):
        credential_source(make_settings(**{"auth.mode": "ephemeral"}), None)


# ---- ephemeral --------------------------------------------------------------------------------


def ephemeral(server: RunningServer, clock: FakeClock, key: str = KEY) -> CredentialSource:
    settings = make_settings(**{"api.base_url": server.base_url, "auth.mode": "ephemeral"})
    return credential_source(settings, key, clock=clock)


async def test_ephemeral_mints_a_key_carrying_the_session(clock: FakeClock) -> None:
    async with local_server(clock) as server:
        credentials = await ephemeral(server, clock).get(PIRATE)

        assert credentials.kind == "ephemeral"
        assert credentials.value.startswith("ek_")
        assert credentials.expires_at == int(clock.now) + TTL_S
        assert credentials.session is not None
        assert credentials.session["instructions"] == "Answer like a pirate."
        assert verdict(server, credentials) is KeyVerdict.EPHEMERAL
        assert server.endpoints.config.keys.session_of(credentials.value) == credentials.session
        assert credentials.headers == {"Authorization": f"Bearer {credentials.value}"}
        assert KEY not in repr(credentials) and credentials.value not in repr(credentials)


async def test_ephemeral_key_is_reused_while_valid(clock: FakeClock) -> None:
    async with local_server(clock) as server:
        source = ephemeral(server, clock)
        first = await source.get(PIRATE)

        clock.now += TTL_S - 11  # still outside the 10 s safety margin
        again = await source.get(dict(PIRATE))

        assert again.value == first.value


async def test_ephemeral_key_is_reminted_after_expiry(clock: FakeClock) -> None:
    async with local_server(clock) as server:
        source = ephemeral(server, clock)
        first = await source.get(PIRATE)

        clock.now += TTL_S + 1
        second = await source.get(PIRATE)

        assert second.value != first.value
        assert verdict(server, first) is KeyVerdict.EXPIRED
        assert verdict(server, second) is KeyVerdict.EPHEMERAL


async def test_ephemeral_key_is_reminted_shortly_before_expiry(clock: FakeClock) -> None:
    async with local_server(clock) as server:
        source = ephemeral(server, clock)
        first = await source.get(PIRATE)

        clock.now += TTL_S - 5  # the server still accepts it, but not for long enough
        second = await source.get(PIRATE)

        assert verdict(server, first) is KeyVerdict.EPHEMERAL
        assert second.value != first.value


async def test_ephemeral_key_is_reminted_after_invalidate(clock: FakeClock) -> None:
    async with local_server(clock) as server:
        source = ephemeral(server, clock)
        first = await source.get(PIRATE)

        source.invalidate()
        second = await source.get(PIRATE)

        assert second.value != first.value
        assert verdict(server, second) is KeyVerdict.EPHEMERAL


async def test_another_session_gets_its_own_key(clock: FakeClock) -> None:
    async with local_server(clock) as server:
        source = ephemeral(server, clock)
        pirate = await source.get(PIRATE)

        poet = await source.get({"type": "realtime", "instructions": "Answer in verse."})

        assert poet.value != pirate.value
        assert poet.session is not None and poet.session["instructions"] == "Answer in verse."


async def test_concurrent_calls_share_one_minted_key(clock: FakeClock) -> None:
    async with local_server(clock) as server:
        source = ephemeral(server, clock)

        first, second = await asyncio.gather(source.get(PIRATE), source.get(PIRATE))

        assert first.value == second.value


async def test_a_rejected_key_is_an_auth_error_with_the_service_message(clock: FakeClock) -> None:
    async with local_server(clock) as server:
        source = ephemeral(server, clock, key=WRONG_KEY)

        with pytest.raises(AuthError) as raised:
            await source.get(PIRATE)

    message = raised.value.message
    assert "Incorrect API key provided" in message
    assert "127.0.0.1" in message
    assert WRONG_KEY not in message
    assert raised.value.exit_code == EXIT_AUTH


async def test_a_bad_session_is_a_service_error_with_status_and_code(clock: FakeClock) -> None:
    async with local_server(clock) as server:
        source = ephemeral(server, clock)

        with pytest.raises(ServiceError) as raised:
            await source.get({"type": "realtime", "modalities": ["audio"]})

    assert raised.value.status == 400
    assert raised.value.code is not None
    assert "HTTP 400" in raised.value.message


async def test_verify_key_accepts_the_right_key_and_rejects_a_wrong_one(clock: FakeClock) -> None:
    async with local_server(clock) as server:
        settings = make_settings(**{"api.base_url": server.base_url})

        assert await verify_key(settings, KEY) > 0
        with pytest.raises(AuthError) as raised:
            await verify_key(settings, WRONG_KEY)

    assert WRONG_KEY not in raised.value.message


# ---- token_url --------------------------------------------------------------------------------


@dataclass
class TokenBackend:
    """A team's token service: answers each POST with a fresh key, or with a set failure."""

    clock: FakeClock
    status: int = 200
    reply: str | None = None  # a raw body instead of a fresh key
    requests: list[tuple[dict[str, str], Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.json()))
        if self.reply is not None:
            return web.Response(status=self.status, text=self.reply)
        body = {"value": f"ek_team_{len(self.requests):08d}", "expires_at": int(self.clock()) + 60}
        return web.json_response(body, status=self.status)


@contextlib.asynccontextmanager
async def serving(
    route: Callable[[web.Request], Awaitable[web.Response]],
) -> AsyncIterator[str]:
    """A token backend on 127.0.0.1; yields its URL."""
    app = web.Application()
    app.router.add_post("/token", route)
    async with serving_app(app) as root:
        yield f"{root}/token"


def token_source(url: str, clock: FakeClock, key: str | None = KEY) -> CredentialSource:
    settings = make_settings(**{"auth.mode": "token_url", "auth.token_url": url})
    return credential_source(settings, key, clock=clock)


async def test_token_url_key_is_fetched_with_the_session_only(clock: FakeClock) -> None:
    backend = TokenBackend(clock)
    async with serving(backend.handle) as url:
        credentials = await token_source(url, clock).get(PIRATE)

    assert credentials.value == "ek_team_00000001"
    assert credentials.expires_at == int(clock.now) + 60
    [(headers, body)] = backend.requests
    assert body == {"session": PIRATE}
    assert "Authorization" not in headers
    assert KEY not in json.dumps(headers) + json.dumps(body)


async def test_token_url_key_is_cached_and_refetched(clock: FakeClock) -> None:
    backend = TokenBackend(clock)
    async with serving(backend.handle) as url:
        source = token_source(url, clock, key=None)  # needs no API key at all
        first = await source.get(PIRATE)
        assert (await source.get(PIRATE)).value == first.value
        assert len(backend.requests) == 1

        clock.now += 61
        expired = await source.get(PIRATE)
        source.invalidate()
        rejected = await source.get(PIRATE)

    assert len(backend.requests) == 3
    assert len({first.value, expired.value, rejected.value}) == 3


async def test_token_url_failure_names_status_and_message(clock: FakeClock) -> None:
    error = {"error": {"message": "token service is down", "code": "backend_down"}}
    backend = TokenBackend(clock, status=500, reply=json.dumps(error))
    async with serving(backend.handle) as url:
        with pytest.raises(ServiceError) as raised:
            await token_source(url, clock).get(PIRATE)

    assert raised.value.status == 500
    assert raised.value.code == "backend_down"
    assert raised.value.message.endswith("answered HTTP 500: token service is down")
    assert "127.0.0.1" in raised.value.message


async def test_token_url_failure_without_json_names_the_status(clock: FakeClock) -> None:
    backend = TokenBackend(clock, status=502, reply="<html>Bad Gateway</html>")
    async with serving(backend.handle) as url:
        with pytest.raises(ServiceError) as raised:
            await token_source(url, clock).get(PIRATE)

    assert raised.value.message.endswith("answered HTTP 502")


async def test_token_url_refusal_is_an_auth_error(clock: FakeClock) -> None:
    backend = TokenBackend(clock, status=401, reply='{"error": "not on the allow list"}')
    async with serving(backend.handle) as url:
        with pytest.raises(AuthError, match="HTTP 401: not on the allow list$"):
            await token_source(url, clock).get(PIRATE)


async def test_token_url_answer_without_a_key_is_a_clear_error(clock: FakeClock) -> None:
    backend = TokenBackend(clock, reply='{"token": "ek_elsewhere"}')
    async with serving(backend.handle) as url:
        with pytest.raises(ServiceError, match="answered without a key"):
            await token_source(url, clock).get(PIRATE)


def test_token_url_mode_without_a_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"auth\.token_url"):
        credential_source(make_settings(**{"auth.mode": "token_url"}), KEY)


# ---- Azure ------------------------------------------------------------------------------------


@dataclass
class Recorded:
    root: str  # http://127.0.0.1:PORT, the "resource endpoint"
    requests: list[tuple[str, dict[str, str]]]


@contextlib.asynccontextmanager
async def recorded_server(clock: FakeClock) -> AsyncIterator[Recorded]:
    """The real server's handlers, with each request's path and headers noted on the way in."""
    requests: list[tuple[str, dict[str, str]]] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        requests.append((request.path, dict(request.headers)))
        response: web.StreamResponse = await handler(request)
        return response

    keys = KeyStore(standard=frozenset([KEY]), clock=clock)
    async with asyncio.TaskGroup() as tasks:
        app = web.Application(middlewares=[record])
        app.add_routes(Endpoints(ServerConfig(responder=EchoResponder, keys=keys), tasks).routes())
        async with serving_app(app) as root:
            yield Recorded(root, requests)


@contextlib.asynccontextmanager
async def serving_app(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def azure_settings(root: str, mode: str) -> Settings:
    return make_settings(
        **{
            "api.provider": "azure",
            "api.azure_endpoint": root + "/",
            "api.azure_deployment": "my-realtime",
            "auth.mode": mode,
        }
    )


async def test_azure_direct_sends_the_key_as_api_key(clock: FakeClock) -> None:
    async with recorded_server(clock) as server:
        credentials = await credential_source(azure_settings(server.root, "direct"), KEY).get({})

        assert credentials.base_url == f"{server.root}/openai/v1"
        assert credentials.headers == {"api-key": KEY}
        assert await status_with(credentials) == 200


async def test_azure_ephemeral_mints_at_openai_v1_with_the_deployment(clock: FakeClock) -> None:
    async with recorded_server(clock) as server:
        source = credential_source(azure_settings(server.root, "ephemeral"), KEY, clock=clock)

        credentials = await source.get(PIRATE)

    assert credentials.value.startswith("ek_")
    assert credentials.session is not None
    assert credentials.session["model"] == "my-realtime"
    assert credentials.session["instructions"] == "Answer like a pirate."
    assert credentials.headers == {"Authorization": f"Bearer {credentials.value}"}
    [(path, headers)] = server.requests
    assert path == "/openai/v1/realtime/client_secrets"
    assert headers["api-key"] == KEY
    assert "Authorization" not in headers  # Azure would read a Bearer as an Entra token


async def test_azure_verify_key_uses_the_v1_models_path(clock: FakeClock) -> None:
    async with recorded_server(clock) as server:
        assert await verify_key(azure_settings(server.root, "direct"), KEY) > 0

    [(path, headers)] = server.requests
    assert path == "/openai/v1/models"
    assert headers["api-key"] == KEY and "Authorization" not in headers


def test_azure_without_an_endpoint_is_a_config_error() -> None:
    settings = make_settings(**{"api.provider": "azure"})

    with pytest.raises(ConfigError, match=r"api\.azure_endpoint"):
        credential_source(settings, KEY)


# ---- unreachable ------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens there any more: connecting is refused


async def test_unreachable_endpoint_is_a_network_error_quickly(clock: FakeClock) -> None:
    port = closed_port()
    settings = make_settings(
        **{"api.base_url": f"http://127.0.0.1:{port}/v1", "auth.mode": "ephemeral"}
    )
    started = time.monotonic()

    with pytest.raises(NetworkError) as raised:
        await credential_source(settings, KEY, clock=clock).get(PIRATE)

    assert time.monotonic() - started < 2
    assert raised.value.message.startswith(f"cannot reach 127.0.0.1:{port}")
    assert KEY not in raised.value.message


async def test_unreachable_token_url_is_a_network_error_quickly(clock: FakeClock) -> None:
    port = closed_port()
    started = time.monotonic()

    with pytest.raises(NetworkError) as raised:
        await token_source(f"http://127.0.0.1:{port}/token", clock).get(PIRATE)

    assert time.monotonic() - started < 2
    assert raised.value.message.startswith(f"cannot reach the token URL at 127.0.0.1:{port}")
