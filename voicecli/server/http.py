"""`voicecli serve`: the HTTP face of the local realtime endpoint (aiohttp).

Paths and bodies follow the real service (realtime-protocol.md §1, §8): the GA call endpoint
``POST /v1/realtime/calls`` (raw SDP with an ephemeral key, or multipart ``sdp`` + ``session``
with a standard key), ``/v1/realtime/client_secrets``, hangup, ``/v1/models`` and the Realtime
WebSocket ``GET /v1/realtime?model=…`` (server/ws.py); the same under ``/openai/v1`` with an
``api-key`` header, as Azure serves them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web
from aiortc.sdp import SessionDescription
from openai.types.realtime import ClientSecretCreateResponse

from voicecli.realtime.schema import check_client_event, check_object
from voicecli.redact import mask_key
from voicecli.server import shapes
from voicecli.server.faults import CallFailures, ServeFaults
from voicecli.server.keys import KeyStore, KeyVerdict
from voicecli.server.peer import Call
from voicecli.server.responders import Responder
from voicecli.server.session import SessionOptions
from voicecli.server.shapes import JsonObject
from voicecli.server.ws import SocketCall, serve_socket

log = logging.getLogger(__name__)

PREFIXES = ("/v1", "/openai/v1")  # OpenAI, and Azure's GA v1 paths (§1.7)
TTL_DEFAULT_S, TTL_MIN_S, TTL_MAX_S = 600, 10, 7200
Offer = tuple[str, JsonObject | None]  # the SDP and the multipart session part, if any


@dataclass
class ServerConfig:
    responder: Callable[[], Responder]
    keys: KeyStore = field(default_factory=lambda: KeyStore(open=True))
    faults: ServeFaults = field(default_factory=ServeFaults)
    generation_speed: float = 4.0
    model: str = shapes.DEFAULT_MODEL


def error_response(
    status: int,
    message: str,
    *,
    code: str | None,
    kind: str = "invalid_request_error",
    param: str | None = None,
) -> web.Response:
    """The standard OpenAI error body, used on every endpoint including the SDP one."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status)


_FORCED = {
    401: (
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_api_key",
        "invalid_request_error",
    ),
    429: (
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        "insufficient_quota",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        None,
        "server_error",
    ),
}


class Endpoints:
    """Request handlers; they own the live calls through the server's TaskGroup."""

    def __init__(self, config: ServerConfig, tasks: asyncio.TaskGroup) -> None:
        self.config = config
        self.calls: dict[str, Call | SocketCall] = {}  # WebSocket sessions under their sess_ id
        self._tasks = tasks
        self._failures = CallFailures(config.faults)

    def routes(self) -> list[web.RouteDef]:
        table: list[web.RouteDef] = []
        for prefix in PREFIXES:
            table += [
                web.post(f"{prefix}/realtime/calls", self.create_call),
                web.post(f"{prefix}/realtime/calls/{{call_id}}/hangup", self.hangup),
                web.post(f"{prefix}/realtime/client_secrets", self.client_secret),
                web.get(f"{prefix}/models", self.models),
                web.get(f"{prefix}/realtime", self.realtime_socket),
            ]
        return table

    # Auth.

    def _auth(self, request: web.Request, *, standard_only: bool = False) -> web.Response | str:
        key = _key_of(request)
        verdict = self.config.keys.check(key)
        if verdict is KeyVerdict.MISSING:
            return error_response(
                401,
                "You didn't provide an API key. You need to provide your "
                "API key in an Authorization header using Bearer auth (i.e. "
                "Authorization: Bearer YOUR_KEY).",
                code=None,
            )
        if verdict is KeyVerdict.EXPIRED:
            return error_response(
                401,
                "The ephemeral key has expired. Create a new client secret.",
                code="invalid_api_key",
            )
        if verdict is KeyVerdict.INVALID or (standard_only and verdict is KeyVerdict.EPHEMERAL):
            return error_response(
                401,
                f"Incorrect API key provided: {mask_key(key or '')}. You "
                "can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        assert key is not None
        return key

    # POST /v1/realtime/calls

    async def create_call(self, request: web.Request) -> web.Response:
        forced = await self._forced_failure()
        if forced is not None:
            return forced
        key = self._auth(request)
        if isinstance(key, web.Response):
            return key
        offer = await _read_offer(request)
        if isinstance(offer, web.Response):
            return offer
        sdp, session_part = offer
        session = self._session_for(key, session_part)
        if isinstance(session, web.Response):
            return session
        return await self._answer(sdp, session)

    async def _forced_failure(self) -> web.Response | None:
        delay = self.config.faults.answer_delay_ms
        if delay:
            await asyncio.sleep(delay / 1000)
        status = self._failures.next_status()
        if status is None:
            return None
        message, code, kind = _FORCED.get(status, _FORCED[500])
        code = self.config.faults.fail_calls_code or code
        return error_response(status, message, code=code, kind=kind)

    def _session_for(self, key: str, part: JsonObject | None) -> JsonObject | web.Response:
        session = shapes.default_session(self.config.model)
        minted = self.config.keys.session_of(key)
        for update in (minted, part):
            if update:
                session = shapes.merge(session, update)
        return session

    async def _answer(self, sdp: str, session: JsonObject) -> web.Response:
        call_id = f"rtc_{secrets.token_hex(16)}"
        faults = self.config.faults
        options = SessionOptions(
            generation_speed=self.config.generation_speed,
            strict_tool_output=faults.strict_tool_output,
            drop_on=faults.drop_on,
        )
        call = Call(call_id, self.config.responder(), session, options, faults.for_call())
        try:
            answer = await call.answer(sdp)
        except (ValueError, AssertionError) as exc:  # aiortc rejects offers it cannot use
            await call.pc.close()
            return _invalid_offer(f"Invalid SDP offer. {exc}".strip())
        self.calls[call_id] = call
        self._tasks.create_task(self._serve(call))
        # Exactly "application/sdp" (aiohttp's text= would add a charset the service does not).
        headers = {"Content-Type": "application/sdp", "Location": f"/v1/realtime/calls/{call_id}"}
        return web.Response(status=201, body=answer.encode(), headers=headers)

    async def _serve(self, call: Call) -> None:
        try:
            await call.run()
        finally:
            self.calls.pop(call.call_id, None)

    # POST /v1/realtime/calls/{id}/hangup

    async def hangup(self, request: web.Request) -> web.Response:
        key = self._auth(request)
        if isinstance(key, web.Response):
            return key
        call = self.calls.get(request.match_info["call_id"])
        if call is None:
            return error_response(404, "Call not found.", code="call_not_found")
        await call.close()
        return web.Response(status=200)

    # POST /v1/realtime/client_secrets

    async def client_secret(self, request: web.Request) -> web.Response:
        key = self._auth(request, standard_only=True)
        if isinstance(key, web.Response):
            return key
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        seconds = _ttl(body)
        if isinstance(seconds, web.Response):
            return seconds
        session = body.get("session") or {"type": "realtime"}
        invalid = _invalid_session(session)
        if invalid is not None:
            return invalid
        full = shapes.merge(shapes.default_session(self.config.model), session)
        minted = self.config.keys.mint(full, seconds)
        reply = {"value": minted.value, "expires_at": int(minted.expires_at), "session": full}
        problem = check_object(ClientSecretCreateResponse, reply)
        if problem is not None:
            raise RuntimeError(f"client secret response off-schema: {problem.message}")
        return web.json_response(reply)

    # GET /v1/realtime?model=… (WebSocket; auth answered before the upgrade, like the service)

    async def realtime_socket(self, request: web.Request) -> web.StreamResponse:
        key = self._auth(request)
        if isinstance(key, web.Response):
            return key
        session = self._session_for(key, None)
        assert not isinstance(session, web.Response)  # only a session part can be refused
        return await serve_socket(request, self.config, session, self.calls)

    # GET /v1/models

    async def models(self, request: web.Request) -> web.Response:
        key = self._auth(request)
        if isinstance(key, web.Response):
            return key
        created = int(time.time())
        data = [
            {"id": m, "object": "model", "created": created, "owned_by": "system"}
            for m in shapes.MODELS
        ]
        return web.json_response({"object": "list", "data": data})

    async def close_all(self) -> None:
        for call in list(self.calls.values()):
            await call.close()


def _key_of(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("api-key") or None


async def _read_offer(request: web.Request) -> Offer | web.Response:
    kind = request.content_type
    if kind == "application/sdp":
        return await _checked_offer(await request.text(), None)
    if kind == "multipart/form-data":
        return await _read_multipart(request)
    return error_response(
        415,
        f"Unsupported content type: '{kind}'. Use application/sdp or multipart/form-data.",
        code="unsupported_content_type",
    )


async def _read_multipart(request: web.Request) -> Offer | web.Response:
    parts: dict[str, str] = {}
    reader = await request.multipart()
    async for part in reader:
        if isinstance(part, BodyPartReader) and part.name in {"sdp", "session"}:
            parts[part.name] = await part.text()
    if "sdp" not in parts:
        return error_response(
            400,
            "Missing required parameter: 'sdp'.",
            code="missing_required_parameter",
            param="sdp",
        )
    session = _parse_session_part(parts.get("session"))
    if isinstance(session, web.Response):
        return session
    return await _checked_offer(parts["sdp"], session)


def _parse_session_part(text: str | None) -> JsonObject | None | web.Response:
    if text is None:
        return None
    try:
        session = json.loads(text)
    except ValueError:
        return error_response(
            400, "The 'session' part is not valid JSON.", code="invalid_json", param="session"
        )
    invalid = _invalid_session(session)
    return invalid if invalid is not None else session


def _invalid_session(session: Any) -> web.Response | None:
    problem = check_client_event({"type": "session.update", "session": session})
    if problem is None:
        return None
    return error_response(400, problem.message, code=problem.code, param=problem.param)


async def _checked_offer(sdp: str, session: JsonObject | None) -> Offer | web.Response:
    try:
        parsed = SessionDescription.parse(sdp)
    except (ValueError, IndexError, KeyError):
        return _invalid_offer("Invalid SDP offer. Please try again with a WHIP-compliant offer.")
    if not any(media.kind == "audio" for media in parsed.media):
        return _invalid_offer("Invalid SDP offer. Offer did not have an audio media section.")
    return sdp, session


def _invalid_offer(message: str) -> web.Response:
    return error_response(400, message, code="invalid_offer")


async def _json_body(request: web.Request) -> JsonObject | web.Response:
    try:
        body = await request.json()
    except ValueError:
        return error_response(
            400, "We could not parse the JSON body of your request.", code="invalid_json"
        )
    if not isinstance(body, dict):
        return error_response(400, "The body must be a JSON object.", code="invalid_json")
    return body


def _ttl(body: JsonObject) -> int | web.Response:
    expires = body.get("expires_after") or {}
    seconds = expires.get("seconds", TTL_DEFAULT_S) if isinstance(expires, dict) else None
    if (
        not isinstance(seconds, int)
        or isinstance(seconds, bool)
        or not (TTL_MIN_S <= seconds <= TTL_MAX_S)
    ):
        return error_response(
            400,
            f"Invalid 'expires_after.seconds': expected an integer "
            f"between {TTL_MIN_S} and {TTL_MAX_S}.",
            code="invalid_value",
            param="expires_after.seconds",
        )
    return seconds
