"""Server event and item shapes, as the real GA service sends them (realtime-protocol.md §4.5–4.6).

Pure functions returning JSON objects. Every event leaves through CallSession._emit, which
validates it against the SDK's server event types first.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

JsonObject = dict[str, Any]

MODELS = (
    "gpt-realtime-2.1",
    "gpt-realtime-2.1-mini",
    "gpt-realtime-2",
    "gpt-realtime-1.5",
    "gpt-realtime",
    "gpt-realtime-mini",
)
DEFAULT_MODEL = "gpt-realtime-2.1"
SESSION_MAX_S = 60 * 60


def new_id(prefix: str) -> str:
    """Ids shaped like the service's: ``event_…``, ``item_…``, ``resp_…`` (21 characters)."""
    return f"{prefix}_{secrets.token_urlsafe(16)[:21].replace('-', 'x').replace('_', 'y')}"


def default_session(model: str = DEFAULT_MODEL) -> JsonObject:
    """The session a new call starts with (shape of a real `session.created`)."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": new_id("sess"),
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "You are a helpful assistant.",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": int(time.time()) + SESSION_MAX_S,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                    "idle_timeout_ms": None,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": "marin",
                "speed": 1.0,
            },
        },
        "include": None,
    }


def merge(base: JsonObject, update: JsonObject) -> JsonObject:
    """session.update semantics: only present fields change; nested objects merge.

    ``turn_detection`` and ``transcription`` are replaced whole: a type change (server_vad →
    semantic_vad) must not keep the old type's fields.
    """
    merged = dict(base)
    for key, value in update.items():
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, dict) and key not in _REPLACED_WHOLE:
            merged[key] = merge(old, value)
        else:
            merged[key] = value
    return merged


_REPLACED_WHOLE = frozenset({"turn_detection", "transcription", "format", "noise_reduction"})


def error_event(
    code: str,
    message: str,
    *,
    param: str | None = None,
    event_id: str | None = None,
    kind: str = "invalid_request_error",
) -> JsonObject:
    return {
        "type": "error",
        "event_id": new_id("event"),
        "error": {
            "type": kind,
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        },
    }


def user_audio_item(item_id: str, transcript: str | None = None) -> JsonObject:
    return {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": transcript}],
    }


def assistant_item(item_id: str, status: str, content: list[JsonObject]) -> JsonObject:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str
) -> JsonObject:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def response_object(
    response_id: str, conversation_id: str, session: JsonObject, **done: Any
) -> JsonObject:
    """A response object; ``done`` sets status, status_details, output and usage when it ends."""
    audio_out = session.get("audio", {}).get("output", {})
    return {
        "object": "realtime.response",
        "id": response_id,
        "status": "in_progress",
        "status_details": None,
        "output": [],
        "conversation_id": conversation_id,
        "output_modalities": session.get("output_modalities", ["audio"]),
        "max_output_tokens": session.get("max_output_tokens", "inf"),
        "audio": {
            "output": {
                "format": audio_out.get("format", {"type": "audio/pcm", "rate": 24000}),
                "voice": audio_out.get("voice", "marin"),
            }
        },
        "usage": None,
        "metadata": None,
    } | done


def usage(*, text_in: int, audio_in: int, text_out: int, audio_out: int) -> JsonObject:
    """A usage object with the real one's shape; token counts follow the documented rates."""
    return {
        "total_tokens": text_in + audio_in + text_out + audio_out,
        "input_tokens": text_in + audio_in,
        "output_tokens": text_out + audio_out,
        "input_token_details": {
            "text_tokens": text_in,
            "audio_tokens": audio_in,
            "image_tokens": 0,
            "cached_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
    }


def text_tokens(text: str) -> int:
    """About four characters a token, as OpenAI's rule of thumb."""
    return max(1, len(text) // 4) if text else 0


def audio_tokens_in(seconds: float) -> int:
    return round(seconds * 10)  # user audio: ~1 token per 100 ms (realtime-protocol.md §7)


def audio_tokens_out(seconds: float) -> int:
    return round(seconds * 20)  # assistant audio: ~1 token per 50 ms


def split_words(text: str) -> list[str]:
    """Transcript deltas: one word a delta, keeping the spaces so the deltas join back exactly."""
    words: list[str] = []
    for index, word in enumerate(text.split(" ")):
        words.append(word if index == 0 else " " + word)
    return [w for w in words if w]
