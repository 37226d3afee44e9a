"""The event layer: outgoing events built and validated, incoming events parsed leniently.

Outgoing (client → service) events are plain JSON objects checked against the openai SDK's
types before they may be encoded; an invalid one raises InvalidEventError naming the field and is
never sent. Incoming (service → client) events of a known type become the SDK's model; anything
else (a new type, a shape the SDK does not know, even text that is not JSON) is kept raw as an
UnknownServerEvent. Extra fields, such as the real service's ``obfuscation`` on transcript deltas,
are ignored. Parsing never raises.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic

from voicecli.errors import InvalidEventError
from voicecli.realtime.schema import check_client_event, server_event_models

JsonObject = dict[str, Any]


def new_id(prefix: str) -> str:
    """An id shaped like the service's (``evt_…``, ``item_…``, ``call_…``)."""
    return f"{prefix}_{secrets.token_hex(11)}"


def client_event(kind: str, **fields: Any) -> JsonObject:
    """Build a client event and validate it; raise InvalidEventError if it is off-schema."""
    event: JsonObject = {"type": kind, **{k: v for k, v in fields.items() if v is not None}}
    event.setdefault("event_id", new_id("evt"))
    validate_client_event(event)
    return event


def validate_client_event(event: Mapping[str, Any]) -> None:
    """Raise InvalidEventError if ``event`` would be rejected by the service's schema."""
    problem = check_client_event(event)
    if problem is not None:
        kind = event.get("type", "?")
        raise InvalidEventError(f"refused to send {kind}: {problem.message}", param=problem.param)


def encode_client_event(event: Mapping[str, Any]) -> str:
    """Validate and serialise one event for the data channel (one JSON object per message)."""
    validate_client_event(event)
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


# Builders for the events we send most. Each returns a validated event.


def session_update(session: Mapping[str, Any]) -> JsonObject:
    return client_event("session.update", session={"type": "realtime", **session})


def user_text(text: str) -> JsonObject:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return client_event("conversation.item.create", item=item)


def function_call_output(call_id: str, output: str) -> JsonObject:
    # Only the three documented fields: extra ones can make the service drop the data channel.
    item = {"type": "function_call_output", "call_id": call_id, "output": output}
    return client_event("conversation.item.create", item=item)


def response_create(**response: Any) -> JsonObject:
    return client_event("response.create", response=response or None)


def response_cancel(response_id: str | None = None) -> JsonObject:
    return client_event("response.cancel", response_id=response_id)


def input_audio_buffer_commit() -> JsonObject:
    return client_event("input_audio_buffer.commit")


def input_audio_buffer_clear() -> JsonObject:
    return client_event("input_audio_buffer.clear")


def output_audio_buffer_clear() -> JsonObject:
    return client_event("output_audio_buffer.clear")


# Incoming.


@dataclass(frozen=True, slots=True)
class UnknownServerEvent:
    """A server event we do not model: kept as it came, with the reason it was not typed."""

    type: str
    raw: JsonObject = field(default_factory=dict)
    problem: str | None = None


ServerEvent = pydantic.BaseModel | UnknownServerEvent


def parse_server_event(text: str | bytes) -> ServerEvent:
    """Parse one data-channel message. Never raises."""
    try:
        data = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:  # RecursionError: absurd nesting
        return UnknownServerEvent("", {"text": _preview(text)}, f"not JSON: {exc}")
    if not isinstance(data, dict):
        return UnknownServerEvent("", {"value": data}, "not a JSON object")
    return parse_server_object(data)


def parse_server_object(data: JsonObject) -> ServerEvent:
    """Type a decoded server event when its type is known and its shape fits."""
    kind = data.get("type")
    model = server_event_models().get(kind) if isinstance(kind, str) else None
    if model is None:
        return UnknownServerEvent(str(kind or ""), data)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        return UnknownServerEvent(str(kind), data, f"unexpected shape: {exc.error_count()} errors")


def event_type(event: ServerEvent) -> str:
    """The wire type of a parsed event, typed or not."""
    if isinstance(event, UnknownServerEvent):
        return event.type
    return str(getattr(event, "type", ""))


def _preview(text: str | bytes, limit: int = 200) -> str:
    shown = text if isinstance(text, str) else text.decode("utf-8", "replace")
    return shown[:limit]
