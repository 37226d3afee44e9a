"""voicecli.realtime.schema: real GA events pass, mistakes get the service's codes and params.

Samples are quoted from /work/shared/docs/realtime-protocol.md §4.4 (client → server) and §4.5
(server → client); the expected errors are the ones of §4.4, §5.2 and §8.2.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from openai.types.realtime import (
    ClientSecretCreateResponse,
    RealtimeSessionCreateRequest,
)

from tests.unit.samples import RESPONSE_DONE
from voicecli.realtime.schema import (
    SERVER_SESSION_FIELDS,
    SchemaProblem,
    check_client_event,
    check_object,
    check_server_event,
)

JsonObject = dict[str, Any]

# §4.5, verbatim ("..." ids kept as the document has them).
TRANSCRIPT_DELTA_WITH_OBFUSCATION: JsonObject = {
    "type": "response.output_audio_transcript.delta",
    "event_id": "...",
    "response_id": "resp_...",
    "item_id": "item_...",
    "output_index": 0,
    "content_index": 0,
    "delta": "Hello",
    "obfuscation": "x7Qp",
}

SERVER_SAMPLES: list[JsonObject] = [
    {
        "type": "error",
        "event_id": "event_890",
        "error": {
            "type": "invalid_request_error",
            "code": "invalid_event",
            "message": "The 'type' field is missing.",
            "param": None,
            "event_id": "evt_client_1",
        },
    },
    RESPONSE_DONE,
    {
        "type": "rate_limits.updated",
        "event_id": "event_...",
        "rate_limits": [
            {"name": "tokens", "limit": 40000, "remaining": 38490, "reset_seconds": 2.265}
        ],
    },
    {
        "type": "conversation.item.input_audio_transcription.delta",
        "event_id": "...",
        "item_id": "item_...",
        "content_index": 0,
        "delta": "Hey,",
    },
    {
        "type": "conversation.item.input_audio_transcription.completed",
        "event_id": "event_CCXGRvtUVrax5SJAnNOWZ",
        "item_id": "item_CCXGQ4e1ht4cOraEYcuR2",
        "content_index": 0,
        "transcript": "Hey, can you hear me?",
        "usage": {
            "type": "tokens",
            "total_tokens": 22,
            "input_tokens": 13,
            "input_token_details": {"text_tokens": 0, "audio_tokens": 13},
            "output_tokens": 9,
        },
    },
    {
        # §4.5: "usage may instead be {"type":"duration","seconds":2.1} (whisper-1)".
        "type": "conversation.item.input_audio_transcription.completed",
        "event_id": "...",
        "item_id": "item_...",
        "content_index": 0,
        "transcript": "Hey, can you hear me?",
        "usage": {"type": "duration", "seconds": 2.1},
    },
    {
        "type": "conversation.item.input_audio_transcription.failed",
        "event_id": "...",
        "item_id": "...",
        "content_index": 0,
        "error": {
            "type": "transcription_error",
            "code": "audio_unintelligible",
            "message": "The audio could not be transcribed.",
            "param": None,
        },
    },
    {
        "type": "response.output_audio_transcript.done",
        "event_id": "...",
        "response_id": "...",
        "item_id": "...",
        "output_index": 0,
        "content_index": 0,
        "transcript": "Hello there!",
    },
    {
        "type": "response.function_call_arguments.delta",
        "event_id": "...",
        "response_id": "resp_002",
        "item_id": "fc_001",
        "output_index": 0,
        "call_id": "call_001",
        "delta": '{"loc',
    },
    {
        "type": "response.function_call_arguments.done",
        "event_id": "event_5556",
        "response_id": "resp_002",
        "item_id": "fc_001",
        "output_index": 0,
        "call_id": "call_001",
        "name": "get_weather",
        "arguments": '{"location": "San Francisco"}',
    },
    {
        "type": "conversation.item.added",
        "event_id": "event_C9G8pjSJCfRNEhMEnYAVy",
        "previous_item_id": None,
        "item": {
            "id": "item_C9G8pGVKYnaZu8PH5YQ9O",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_text", "text": "hi"}],
        },
    },
    {
        "event_id": "event_abc123",
        "type": "output_audio_buffer.started",
        "response_id": "resp_abc123",
    },
    {
        "event_id": "event_abc123",
        "type": "output_audio_buffer.stopped",
        "response_id": "resp_abc123",
    },
    {
        "event_id": "event_abc123",
        "type": "output_audio_buffer.cleared",
        "response_id": "resp_abc123",
    },
    {
        "type": "input_audio_buffer.speech_started",
        "event_id": "...",
        "audio_start_ms": 1000,
        "item_id": "item_...",
    },
    {
        "type": "input_audio_buffer.speech_stopped",
        "event_id": "...",
        "audio_end_ms": 2000,
        "item_id": "item_...",
    },
]


@pytest.mark.parametrize(
    "event", SERVER_SAMPLES, ids=[f"{i}-{e['type']}" for i, e in enumerate(SERVER_SAMPLES)]
)
def test_real_server_samples_are_accepted(event: JsonObject) -> None:
    assert check_server_event(event) is None


def test_obfuscation_on_transcript_delta_is_an_unknown_parameter_for_the_strict_check() -> None:
    # The real service adds `obfuscation` to transcript deltas (§4.5 [TRACE]) but the SDK types
    # do not have it. check_server_event is strict on extras (only SERVER_SESSION_FIELDS are
    # allowed) because it guards what *our* stand-in sends: `voicecli serve` never sends
    # obfuscation, so flagging it is right. The client side parses incoming events with the
    # lenient parser in events.py, which ignores the field (see test_events.py).
    problem = check_server_event(TRANSCRIPT_DELTA_WITH_OBFUSCATION)
    assert problem == SchemaProblem(
        "unknown_parameter", "obfuscation", "Unknown parameter: 'obfuscation'."
    )
    without = {k: v for k, v in TRANSCRIPT_DELTA_WITH_OBFUSCATION.items() if k != "obfuscation"}
    assert check_server_event(without) is None


def test_server_only_session_fields_are_allowed_in_session_created() -> None:
    assert {"session.id", "session.object", "session.expires_at"} == SERVER_SESSION_FIELDS
    event = {
        "type": "session.created",
        "event_id": "event_1",
        "session": {
            "type": "realtime",
            "object": "realtime.session",
            "id": "sess_1",
            "expires_at": 1_700_000_000,
            "model": "gpt-realtime",
        },
    }
    assert check_server_event(event) is None
    # Only those three: any other extra on the session is still reported.
    event["session"]["temperature"] = 0.8
    assert check_server_event(event) == SchemaProblem(
        "unknown_parameter", "session.temperature", "Unknown parameter: 'session.temperature'."
    )


def test_server_session_fields_are_not_allowed_elsewhere() -> None:
    # "id" is allowed under session only, not at the top of an event.
    event = {"type": "output_audio_buffer.started", "event_id": "e", "response_id": "r", "id": "x"}
    problem = check_server_event(event)
    assert problem is not None
    assert (problem.code, problem.param) == ("unknown_parameter", "id")


def test_a_client_event_type_is_not_a_server_event() -> None:
    problem = check_server_event({"type": "response.create"})
    assert problem is not None
    assert (problem.code, problem.param) == ("invalid_value", "type")


# Client events, §4.4.

TOOL: JsonObject = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}

SESSION_UPDATE: JsonObject = {
    "type": "session.update",
    "event_id": "evt_1",
    "session": {
        "type": "realtime",
        "instructions": "Be brief.",
        "audio": {
            "input": {
                "turn_detection": {"type": "semantic_vad", "eagerness": "auto"},
                "transcription": {"model": "gpt-4o-mini-transcribe"},
            },
            "output": {"voice": "marin"},
        },
        "tools": [TOOL],
        "tool_choice": "auto",
    },
}

INLINE_USER_MESSAGE: JsonObject = {
    "type": "message",
    "role": "user",
    "content": [{"type": "input_text", "text": "hi"}],
}


def response_create_full(input_items: list[JsonObject]) -> JsonObject:
    return {
        "type": "response.create",
        "response": {
            "conversation": "auto",
            "output_modalities": ["audio"],
            "instructions": "Say goodbye.",
            "tools": [TOOL],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "metadata": {"purpose": "greeting"},
            "audio": {"output": {"voice": "marin", "format": {"type": "audio/pcm", "rate": 24000}}},
            "input": input_items,
        },
    }


def item_create(item: JsonObject, **extra: Any) -> JsonObject:
    return {"type": "conversation.item.create", "item": item, **extra}


CLIENT_SAMPLES: list[JsonObject] = [
    SESSION_UPDATE,
    # Push-to-talk: turn detection off (§6).
    {
        "type": "session.update",
        "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
    },
    response_create_full([INLINE_USER_MESSAGE]),
    {"type": "response.create"},
    {
        "type": "response.create",
        "response": {"conversation": "none", "output_modalities": ["text"]},
    },
    item_create(INLINE_USER_MESSAGE, previous_item_id=None),
    item_create(
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_audio", "audio": "AAAA", "transcript": "hi"}],
        }
    ),
    item_create(
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"}
            ],
        }
    ),
    item_create(
        {
            "type": "message",
            "role": "system",
            "content": [{"type": "input_text", "text": "Be kind."}],
        }
    ),
    item_create(
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hi!"}],
        }
    ),
    item_create(
        {"type": "function_call", "name": "get_weather", "arguments": "{}", "call_id": "call_1"}
    ),
    item_create(
        {
            "type": "function_call_output",
            "call_id": "call_9Q9eysr6LstYMEx6",
            "output": '{"temp_c":21}',
        }
    ),
    {
        "type": "conversation.item.truncate",
        "item_id": "item_abc",
        "content_index": 0,
        "audio_end_ms": 1500,
    },
    {"type": "output_audio_buffer.clear", "event_id": "optional"},
    {"type": "response.cancel", "response_id": "resp_1"},
    {"type": "response.cancel"},
    {"type": "input_audio_buffer.commit"},
    {"type": "input_audio_buffer.clear"},
]


@pytest.mark.parametrize(
    "event", CLIENT_SAMPLES, ids=[f"{i}-{e['type']}" for i, e in enumerate(CLIENT_SAMPLES)]
)
def test_documented_client_events_are_valid(event: JsonObject) -> None:
    assert check_client_event(event) is None


def test_response_create_with_an_item_reference_is_valid() -> None:
    # §4.4 [SPEC]: `response.input` may mix references to earlier items with inline items, and
    # the SDK has `ResponseItemReference` (type "item_reference") for exactly that.
    event = response_create_full([{"type": "item_reference", "id": "item_1"}, INLINE_USER_MESSAGE])
    assert check_client_event(event) is None


def test_check_does_not_modify_the_event() -> None:
    event = copy.deepcopy(SESSION_UPDATE)
    check_client_event(event)
    assert event == SESSION_UPDATE


# Mistakes, §4.4 / §5.2 / §8.2.


def session_update(**session: Any) -> JsonObject:
    return {"type": "session.update", "session": session}


def test_missing_session_type() -> None:
    problem = check_client_event(session_update(instructions="Be brief."))
    assert problem == SchemaProblem(
        "missing_required_parameter",
        "session.type",
        "Missing required parameter: 'session.type'.",
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("modalities", ["text", "audio"]),
        ("turn_detection", {"type": "server_vad"}),
        ("turn_detection", None),
        ("max_response_output_tokens", 4096),
        ("temperature", 0.8),
        ("voice", "alloy"),
        ("input_audio_format", "pcm16"),
    ],
)
def test_beta_session_fields_are_unknown_parameters(field: str, value: Any) -> None:
    problem = check_client_event(session_update(type="realtime", **{field: value}))
    assert problem == SchemaProblem(
        "unknown_parameter", f"session.{field}", f"Unknown parameter: 'session.{field}'."
    )


def test_modalities_message_is_the_services() -> None:
    problem = check_client_event(session_update(type="realtime", modalities=["audio"]))
    assert problem is not None
    assert problem.message == "Unknown parameter: 'session.modalities'."


def output_item(**item: Any) -> JsonObject:
    return item_create({"type": "function_call_output", **item})


def test_name_on_function_call_output_is_unknown() -> None:
    problem = check_client_event(output_item(call_id="call_1", output="{}", name="get_weather"))
    assert problem == SchemaProblem(
        "unknown_parameter", "item.name", "Unknown parameter: 'item.name'."
    )


def test_object_output_is_an_invalid_type() -> None:
    problem = check_client_event(output_item(call_id="call_1", output={"temp_c": 21}))
    assert problem == SchemaProblem(
        "invalid_type",
        "item.output",
        "Invalid type for 'item.output': expected a string, but got an object instead.",
    )


@pytest.mark.parametrize("missing", ["call_id", "output"])
def test_missing_function_call_output_fields(missing: str) -> None:
    item = {"call_id": "call_1", "output": "{}"}
    del item[missing]
    problem = check_client_event(output_item(**item))
    assert problem == SchemaProblem(
        "missing_required_parameter",
        f"item.{missing}",
        f"Missing required parameter: 'item.{missing}'.",
    )


def test_float_audio_end_ms_is_an_invalid_type() -> None:
    event = {
        "type": "conversation.item.truncate",
        "item_id": "item_abc",
        "content_index": 0,
        "audio_end_ms": 1500.5,
    }
    problem = check_client_event(event)
    assert problem is not None
    assert (problem.code, problem.param) == ("invalid_type", "audio_end_ms")
    assert problem.message == (
        "Invalid type for 'audio_end_ms': expected an integer, but got a number instead."
    )


def test_missing_type_is_an_invalid_event() -> None:
    problem = check_client_event({"event_id": "evt_client_1"})
    assert problem is not None
    assert problem.code == "invalid_event"
    assert problem.message == "The 'type' field is missing."


@pytest.mark.parametrize("kind", ["response.audio.delta", "transcription_session.update", 5])
def test_unknown_type_is_an_invalid_value_of_type(kind: object) -> None:
    problem = check_client_event({"type": kind})
    assert problem is not None
    assert (problem.code, problem.param) == ("invalid_value", "type")
    assert f"'{kind}'" in problem.message
    # The message lists what would have been accepted.
    assert "'session.update'" in problem.message


def test_unknown_value_of_an_enum_names_the_field() -> None:
    event = session_update(
        type="realtime",
        audio={"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "max"}}},
    )
    problem = check_client_event(event)
    assert problem is not None
    assert (problem.code, problem.param) == (
        "invalid_value",
        "session.audio.input.turn_detection.eagerness",
    )


def test_nested_unknown_field_has_its_full_dotted_path() -> None:
    event = session_update(
        type="realtime",
        audio={"input": {"turn_detection": {"type": "server_vad", "foo": 1}}},
    )
    problem = check_client_event(event)
    assert problem == SchemaProblem(
        "unknown_parameter",
        "session.audio.input.turn_detection.foo",
        "Unknown parameter: 'session.audio.input.turn_detection.foo'.",
    )


def test_list_indexes_appear_in_the_path() -> None:
    second = {**TOOL, "name": "other", "foo": True}
    problem = check_client_event(session_update(type="realtime", tools=[TOOL, second]))
    assert problem is not None
    assert (problem.code, problem.param) == ("unknown_parameter", "session.tools[1].foo")


def test_chat_completions_style_tool_is_reported_at_its_index() -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    problem = check_client_event(session_update(type="realtime", tools=[tool]))
    assert problem is not None
    assert problem.param is not None
    assert problem.param.startswith("session.tools[0]")


def test_unknown_top_level_field() -> None:
    problem = check_client_event({"type": "input_audio_buffer.commit", "item_id": "item_1"})
    assert problem == SchemaProblem("unknown_parameter", "item_id", "Unknown parameter: 'item_id'.")


# check_object.


def test_check_object_accepts_a_valid_session() -> None:
    assert check_object(RealtimeSessionCreateRequest, SESSION_UPDATE["session"], "session") is None


def test_check_object_prefixes_params_and_messages() -> None:
    missing = check_object(RealtimeSessionCreateRequest, {"instructions": "x"}, prefix="session")
    assert missing == SchemaProblem(
        "missing_required_parameter",
        "session.type",
        "Missing required parameter: 'session.type'.",
    )
    wrong = {"type": "realtime", "audio": {"output": {"speed": "fast"}}}
    assert check_object(RealtimeSessionCreateRequest, wrong, prefix="session") == SchemaProblem(
        "invalid_type",
        "session.audio.output.speed",
        "Invalid type for 'session.audio.output.speed': expected a number, "
        "but got a string instead.",
    )
    extra = {"type": "realtime", "tools": [{**TOOL, "strict": True}]}
    assert check_object(RealtimeSessionCreateRequest, extra, prefix="body.session") == (
        SchemaProblem(
            "unknown_parameter",
            "body.session.tools[0].strict",
            "Unknown parameter: 'body.session.tools[0].strict'.",
        )
    )


def test_check_object_without_prefix() -> None:
    problem = check_object(RealtimeSessionCreateRequest, {"type": "realtime", "modalities": []})
    assert problem == SchemaProblem(
        "unknown_parameter", "modalities", "Unknown parameter: 'modalities'."
    )


def test_check_object_on_a_client_secret_reply() -> None:
    # The GA reply has a top-level `value`; the beta `client_secret` wrapper is unknown (§4.7).
    reply = {
        "value": "ek_abc",
        "expires_at": 1_700_000_000,
        "session": {
            "type": "realtime",
            "object": "realtime.session",
            "id": "sess_1",
            "model": "gpt-realtime",
        },
    }
    assert check_object(ClientSecretCreateResponse, reply) is None
    problem = check_object(ClientSecretCreateResponse, {**reply, "client_secret": {"value": "x"}})
    assert problem is not None
    assert (problem.code, problem.param) == ("unknown_parameter", "client_secret")
