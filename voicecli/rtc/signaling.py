"""SDP exchange with ``POST /v1/realtime/calls`` and hangup, through the openai SDK.

A non-2xx answer becomes an error carrying the service's ``message`` and ``code``; it is never fed
to setRemoteDescription (which would only say "Failed to parse SessionDescription"). The call id
comes from the ``Location`` header.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import openai

from voicecli.errors import AuthError, NetworkError, ServiceError, VoiceCliError
from voicecli.redact import redact

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Answer:
    sdp: str
    call_id: str | None


class Signaler:
    """The HTTP side of a WebRTC call: offer → answer, and hangup."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        timeout_s: float = 10.0,
        extra_headers: Mapping[str, str | openai.Omit] | None = None,
    ) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._headers = dict(extra_headers or {})  # Azure: the key as api-key, no Bearer

    @property
    def host(self) -> str:
        return urlsplit(str(self._client.base_url)).netloc

    async def exchange(self, offer_sdp: str, session: JsonObject | None) -> Answer:
        """Send the offer (multipart with ``session``, raw SDP without) and return the answer."""
        calls = self._client.realtime.calls.with_raw_response
        try:
            if session is None:
                raw = await calls.create(
                    sdp=offer_sdp, timeout=self._timeout_s, extra_headers=self._headers
                )
            else:
                raw = await calls.create(
                    sdp=offer_sdp,
                    session=session,  # type: ignore[arg-type]  # a dict checked against the SDK
                    timeout=self._timeout_s,
                    extra_headers=self._headers,
                )
        except openai.APIError as exc:
            raise http_error(exc, self.host, "the call") from None
        answer = raw.content.decode("utf-8", "replace")
        if not answer.startswith("v=0"):
            raise ServiceError(
                f"{self.host} answered the call without an SDP answer",
                hint="is the base URL a Realtime API endpoint?",
            )
        location = raw.headers.get("location") or ""
        return Answer(answer, location.rsplit("/", 1)[-1] or None)

    async def aclose(self) -> None:
        """Close the HTTP client (its keep-alive connection)."""
        await self._client.close()

    async def hangup(self, call_id: str) -> None:
        """End the call on the service side (best effort: we are leaving anyway)."""
        try:
            await self._client.realtime.calls.hangup(
                call_id, timeout=2.0, extra_headers=self._headers
            )
        except openai.APIError as exc:
            log.info("hangup of %s failed: %s", call_id, redact(str(exc)))


def http_error(exc: openai.APIError, host: str, what: str) -> VoiceCliError:
    """Map an SDK error to ours, keeping the service's message and code (keys redacted)."""
    if isinstance(exc, openai.APITimeoutError):
        return NetworkError(f"{what} to {host} timed out")
    if isinstance(exc, openai.APIConnectionError):
        reason = redact(str(exc.__cause__ or exc.message))
        return NetworkError(f"cannot reach {host}: {reason}")
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc, host)
    return ServiceError(redact(exc.message))


def _status_error(exc: openai.APIStatusError, host: str) -> VoiceCliError:
    body = exc.body if isinstance(exc.body, dict) else {}
    message = redact(str(body.get("message") or exc.message))
    code = body.get("code") if isinstance(body.get("code"), str) else None
    status = exc.status_code
    if status in (401, 403):
        return AuthError(f"{host} refused the key ({status}): {message}")
    hint = _HINTS.get(code or "") or _HINTS.get(str(status))
    return ServiceError(f"{host} answered {status}: {message}", code=code, status=status, hint=hint)


_HINTS = {
    "insufficient_quota": "check the plan and billing of the API key's organisation",
    "rate_limit_exceeded": "wait a moment and try again",
    "model_not_found": "pick a model the key can use: --model, or session.model in the config",
    "invalid_offer": "the SDP offer was refused; rerun with --debug and report it",
    "500": "the service had an error; try again",
    "503": "the service is overloaded; try again",
}
