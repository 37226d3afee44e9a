"""What a call authenticates with, per ``auth.mode`` (realtime-protocol.md §1.2, §1.7, §8.1).

- ``direct``: the standard key itself (the SDP then goes as multipart with the session).
- ``ephemeral``: an ``ek_…`` minted with the session at ``{base}/realtime/client_secrets``.
- ``token_url``: a key from the team's own backend; the user's API key is never sent there.

Ephemeral and token-URL keys are cached until shortly before they expire, or until the caller
reports a 401 with :meth:`CredentialSource.invalidate`. Azure (``api.provider = "azure"``) uses
``{azure_endpoint}/openai/v1`` and takes a standard key in an ``api-key`` header.

Errors: a rejected key is :class:`AuthError`, an unreachable host :class:`NetworkError` (naming
the host, never a URL that may carry a token), any other HTTP error :class:`ServiceError` with
its status and code. Messages are redacted: the service may echo part of a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast
from urllib.parse import urlsplit

import aiohttp
import openai
from openai.types.realtime import client_secret_create_params

from voicecli.config import Settings
from voicecli.errors import AuthError, ConfigError, NetworkError, ServiceError
from voicecli.redact import redact

JsonObject = dict[str, Any]
Clock = Callable[[], float]

# Fetch a new key this long before the old one expires: a call set up with a key that expires
# during the SDP exchange would fail with a 401 for no visible reason.
EXPIRY_MARGIN_S = 10.0


@dataclass(frozen=True)
class Credentials:
    """A key for the call endpoint at ``base_url``, and how to present it."""

    kind: Literal["standard", "ephemeral"]
    value: str = field(repr=False)  # never in a log line or a traceback
    base_url: str
    expires_at: float | None = None  # unix time; None for a standard key
    azure: bool = False
    session: JsonObject | None = None  # the effective session the service returned, if minted

    @property
    def headers(self) -> dict[str, str]:
        """The auth header: Azure takes a standard key as ``api-key``, every other as Bearer."""
        if self.azure and self.kind == "standard":
            return {"api-key": self.value}
        return {"Authorization": f"Bearer {self.value}"}


class CredentialSource(Protocol):
    async def get(self, session: JsonObject) -> Credentials:
        """Credentials for a call with ``session``; cached ones while they remain valid."""
        ...

    def invalidate(self) -> None:
        """The service rejected the last credentials (401): fetch new ones next time."""
        ...


# ---- the API endpoint and the SDK -------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    base_url: str  # .../v1, or {azure_endpoint}/openai/v1
    azure: bool
    timeout_s: float


def api_endpoint(settings: Settings) -> Endpoint:
    """Where the realtime API is for these settings; ConfigError if Azure lacks its endpoint."""
    timeout_s = settings.network.connect_timeout_s
    if settings.api.provider != "azure":
        return Endpoint(settings.api.base_url.rstrip("/"), False, timeout_s)
    azure_endpoint = settings.api.azure_endpoint.rstrip("/")
    if not azure_endpoint:
        raise ConfigError(
            'api.provider = "azure" needs api.azure_endpoint',
            hint="set it to https://<resource>.openai.azure.com (or VOICECLI_API_AZURE_ENDPOINT)",
        )
    # The GA v1 paths: no api-version, same routes as OpenAI's under /openai/v1 (§1.7).
    return Endpoint(f"{azure_endpoint}/openai/v1", True, timeout_s)


def api_client(endpoint: Endpoint, key: str) -> openai.AsyncOpenAI:
    """An SDK client that fails fast: no retries (callers decide), the configured timeout.

    AsyncAzureOpenAI is not used: it requires an ``api-version`` query and builds the pre-v1
    ``/openai/...`` paths. Plain AsyncOpenAI on the v1 base URL speaks Azure's GA API, with the
    key as ``api-key`` (see :func:`request_headers` for the Bearer header it must not send).
    """
    return openai.AsyncOpenAI(
        api_key=key,  # always explicit: the SDK would otherwise read OPENAI_API_KEY itself
        base_url=endpoint.base_url,
        default_headers={"api-key": key} if endpoint.azure else None,
        max_retries=0,
        timeout=endpoint.timeout_s,
    )


def request_headers(endpoint: Endpoint) -> Mapping[str, str | openai.Omit]:
    """Per-request headers: for Azure, drop the Bearer header so the key goes as api-key only.

    Azure reads a Bearer token as an Entra ID token; the SDK accepts the omission only per
    request, not in default_headers.
    """
    return {"Authorization": openai.Omit()} if endpoint.azure else {}


def _host(url: str) -> str:
    """host[:port] of ``url``: enough to name it, without any credentials or query in it."""
    parts = urlsplit(url)
    host = parts.hostname or url
    return f"{host}:{parts.port}" if parts.port else host


def _service_message(body: object, fallback: str) -> str:
    if isinstance(body, Mapping):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
    return fallback


@contextlib.contextmanager
def sdk_errors(endpoint: Endpoint) -> Iterator[None]:
    """Turn the SDK's exceptions into voicecli's, with redacted one-line messages."""
    host = _host(endpoint.base_url)
    try:
        yield
    except openai.AuthenticationError as exc:
        message = redact(_service_message(exc.body, exc.message))
        raise AuthError(f"{host} rejected the API key: {message}") from None
    except openai.APIStatusError as exc:
        message = redact(_service_message(exc.body, exc.message))
        raise ServiceError(
            f"{host} answered HTTP {exc.status_code}: {message}",
            status=exc.status_code,
            code=exc.code,
        ) from None
    except openai.APITimeoutError:
        raise NetworkError(
            f"cannot reach {host}: timed out after {endpoint.timeout_s:g} s"
        ) from None
    except openai.APIConnectionError as exc:
        reason = redact(str(exc.__cause__ or exc.message)) or "connection failed"
        raise NetworkError(f"cannot reach {host}: {reason}") from None


async def verify_key(settings: Settings, key: str) -> int:
    """Check ``key`` against the endpoint (``GET {base}/models``); the number of models listed."""
    endpoint = api_endpoint(settings)
    with sdk_errors(endpoint):
        async with api_client(endpoint, key) as client:
            page = await client.models.list(extra_headers=request_headers(endpoint))
    return len(page.data)


# ---- the sources ------------------------------------------------------------------------------


class DirectSource:
    """The standard key as is."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    async def get(self, session: JsonObject) -> Credentials:
        return self._credentials

    def invalidate(self) -> None:
        pass  # a standard key does not expire: a 401 for it is final, there is nothing to renew


Fetch = Callable[[JsonObject], Awaitable[Credentials]]


class CachingSource:
    """Keys that expire: fetched on demand, reused while valid for the same session."""

    def __init__(self, fetch: Fetch, clock: Clock, margin_s: float = EXPIRY_MARGIN_S) -> None:
        self._fetch = fetch
        self._clock = clock
        self._margin_s = margin_s
        self._cached: tuple[str, Credentials] | None = None
        # One fetch at a time: two calls starting together should share one key, not mint two.
        self._lock = asyncio.Lock()

    async def get(self, session: JsonObject) -> Credentials:
        # A minted key carries its session, so a different session needs a different key.
        wanted = json.dumps(session, sort_keys=True)
        async with self._lock:
            if self._cached is None or self._cached[0] != wanted or self._expiring(self._cached[1]):
                self._cached = (wanted, await self._fetch(session))
            return self._cached[1]

    def invalidate(self) -> None:
        self._cached = None

    def _expiring(self, credentials: Credentials) -> bool:
        expires_at = credentials.expires_at
        return expires_at is not None and self._clock() >= expires_at - self._margin_s


@dataclass(frozen=True)
class Minter:
    """Mints ephemeral keys with the standard key (``POST {base}/realtime/client_secrets``)."""

    endpoint: Endpoint
    key: str = field(repr=False)
    ttl_s: int
    model: str | None = None  # Azure: the deployment name replaces the session's model

    async def __call__(self, session: JsonObject) -> Credentials:
        # The service requires session.type; a caller's session.update body may omit it.
        body: JsonObject = {"type": "realtime", **session}
        if self.model is not None:
            body["model"] = self.model
        with sdk_errors(self.endpoint):
            async with api_client(self.endpoint, self.key) as client:
                reply = await client.realtime.client_secrets.create(
                    expires_after={"anchor": "created_at", "seconds": self.ttl_s},
                    session=cast(client_secret_create_params.Session, body),
                    extra_headers=request_headers(self.endpoint),
                )
        return Credentials(
            "ephemeral",
            reply.value,
            self.endpoint.base_url,
            expires_at=float(reply.expires_at),
            azure=self.endpoint.azure,
            session=reply.session.model_dump(mode="json", exclude_unset=True),
        )


@dataclass(frozen=True)
class TokenUrlFetcher:
    """Gets a key from the team's backend: ``POST url {"session": …}`` → ``{value, expires_at}``.

    Only the session is sent: the point of a token URL is that clients never hold the API key.
    """

    url: str
    endpoint: Endpoint

    async def __call__(self, session: JsonObject) -> Credentials:
        host = _host(self.url)
        timeout = aiohttp.ClientTimeout(total=self.endpoint.timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.post(self.url, json={"session": session}) as response,
            ):
                status, text = response.status, await response.text()
        except TimeoutError:
            raise NetworkError(
                f"cannot reach the token URL at {host}: "
                f"timed out after {self.endpoint.timeout_s:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            reason = redact(str(exc)) or type(exc).__name__
            raise NetworkError(f"cannot reach the token URL at {host}: {reason}") from None
        if not 200 <= status < 300:
            raise _token_url_error(host, status, text)
        value, expires_at = _parse_token(host, text)
        return Credentials(
            "ephemeral", value, self.endpoint.base_url, expires_at, self.endpoint.azure
        )


def _json_or_none(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _token_url_error(host: str, status: int, text: str) -> AuthError | ServiceError:
    body = _json_or_none(text)
    error = body.get("error", body) if isinstance(body, dict) else None
    message, code = None, None
    if isinstance(error, str):  # {"error": "not allowed"}
        message = error
    elif isinstance(error, dict):  # OpenAI's {"error": {"message", "code"}} or {"message"}
        message = error.get("message") if isinstance(error.get("message"), str) else None
        code = error.get("code") if isinstance(error.get("code"), str) else None
    text_part = f": {redact(message)}" if message else ""
    summary = f"the token URL at {host} answered HTTP {status}{text_part}"
    if status == 401:
        return AuthError(summary, hint="the token URL's backend refused this client; ask its owner")
    return ServiceError(summary, status=status, code=code, hint="check auth.token_url's backend")


def _parse_token(host: str, text: str) -> tuple[str, float]:
    body = _json_or_none(text)
    if isinstance(body, dict) and isinstance(body.get("client_secret"), dict):
        body = body["client_secret"]  # backends proxying the beta sessions API nest it here
    value = body.get("value") if isinstance(body, dict) else None
    expires_at = body.get("expires_at") if isinstance(body, dict) else None
    if (
        not isinstance(value, str)
        or not value
        or isinstance(expires_at, bool)
        or not isinstance(expires_at, int | float)
    ):
        raise ServiceError(
            f"the token URL at {host} answered without a key: "
            'expected JSON {"value": "...", "expires_at": <unix time>}',
            hint="check auth.token_url's backend",
        )
    return value, float(expires_at)


# ---- choosing the source ----------------------------------------------------------------------


def credential_source(
    settings: Settings, key: str | None, *, clock: Clock = time.time
) -> CredentialSource:
    """The source ``auth.mode`` asks for. ``key`` is the resolved API key (unused by token_url)."""
    endpoint = api_endpoint(settings)
    if settings.auth.mode == "token_url":
        return CachingSource(TokenUrlFetcher(_token_url(settings), endpoint), clock)
    if not key:
        raise AuthError(f'auth.mode = "{settings.auth.mode}" needs an API key, and none is set')
    if settings.auth.mode == "ephemeral":
        minter = Minter(endpoint, key, settings.auth.ephemeral_ttl_s, _azure_model(settings))
        return CachingSource(minter, clock)
    return DirectSource(Credentials("standard", key, endpoint.base_url, azure=endpoint.azure))


def _token_url(settings: Settings) -> str:
    url = settings.auth.token_url
    if urlsplit(url).scheme not in ("http", "https"):
        shown = f'"{url}"' if url else "not set"
        raise ConfigError(
            f'auth.mode = "token_url" needs an http(s) auth.token_url ({shown})',
            hint="set auth.token_url to your backend's URL (or VOICECLI_AUTH_TOKEN_URL)",
        )
    return url


def _azure_model(settings: Settings) -> str | None:
    """Azure names the model by its deployment (§1.7); None for OpenAI."""
    if settings.api.provider != "azure":
        return None
    if not settings.api.azure_deployment:
        raise ConfigError(
            'ephemeral keys on Azure need api.azure_deployment (the "model" of the session)',
            hint="set it to your realtime deployment's name (or VOICECLI_API_AZURE_DEPLOYMENT)",
        )
    return settings.api.azure_deployment
