"""voicecli.realtime.events: builders send only valid events; parsing never raises."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.realtime import (
    ConversationItemCreateEvent,
    ResponseAudioTranscriptDeltaEvent,
    ResponseDoneEvent,
    SessionUpdateEvent,
)

from tests.unit.test_schema import RESPONSE_DONE, TRANSCRIPT_DELTA_WITH_OBFUSCATION
from voicecli.errors import InvalidEventError, UsageError
from voicecli.realtime import events
from voicecli.realtime.events import (
    UnknownServerEvent,
    client_event,
    encode_client_event,
    event_type,
    parse_server_event,
)
from voicecli.realtime.schema import check_client_event

JsonObject = dict[str, Any]


def assert_valid(event: JsonObject, kind: str) -> None:
    assert event["type"] == kind
    assert isinstance(event["event_id"], str)
    assert event["event_id"].startswith("evt_")
    assert check_client_event(event) is None
    # It goes on the wire as it is.
    assert json.loads(encode_client_event(event)) == event


def test_session_update_fills_in_the_ga_session_type() -> None:
    event = events.session_update(
        {"instructions": "Be brief.", "audio": {"output": {"voice": "marin"}}}
    )
    assert_valid(event, "session.update")
    assert event["session"] == {
        "type": "realtime",
        "instructions": "Be brief.",
        "audio": {"output": {"voice": "marin"}},
    }
    assert SessionUpdateEvent.model_validate(event).session.type == "realtime"


def test_session_update_refuses_beta_fields() -> None:
    with pytest.raises(InvalidEventError) as info:
        events.session_update({"modalities": ["audio"]})
    assert info.value.param == "session.modalities"


def test_user_text() -> None:
    event = events.user_text("What's the weather?")
    assert_valid(event, "conversation.item.create")
    assert event["item"] == {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "What's the weather?"}],
    }
    assert isinstance(
        ConversationItemCreateEvent.model_validate(event), ConversationItemCreateEvent
    )


def test_function_call_output_carries_only_the_three_documented_fields() -> None:
    event = events.function_call_output("call_9Q9eysr6LstYMEx6", '{"temp_c":21}')
    assert_valid(event, "conversation.item.create")
    assert event["item"] == {
        "type": "function_call_output",
        "call_id": "call_9Q9eysr6LstYMEx6",
        "output": '{"temp_c":21}',
    }
    assert set(event) == {"type", "event_id", "item"}


def test_response_create_bare_and_with_parameters() -> None:
    bare = events.response_create()
    assert_valid(bare, "response.create")
    assert "response" not in bare  # {"type":"response.create"} alone, not "response": null
    full = events.response_create(instructions="Say goodbye.", conversation="none")
    assert_valid(full, "response.create")
    assert full["response"] == {"instructions": "Say goodbye.", "conversation": "none"}


def test_response_create_refuses_unknown_parameters() -> None:
    with pytest.raises(InvalidEventError) as info:
        events.response_create(temperature=0.8)
    assert info.value.param == "response.temperature"


def test_response_cancel_with_and_without_id() -> None:
    bare = events.response_cancel()
    assert_valid(bare, "response.cancel")
    assert "response_id" not in bare
    aimed = events.response_cancel("resp_1")
    assert_valid(aimed, "response.cancel")
    assert aimed["response_id"] == "resp_1"


@pytest.mark.parametrize(
    ("builder", "kind"),
    [
        (events.input_audio_buffer_commit, "input_audio_buffer.commit"),
        (events.input_audio_buffer_clear, "input_audio_buffer.clear"),
        (events.output_audio_buffer_clear, "output_audio_buffer.clear"),
    ],
)
def test_buffer_events(builder: Any, kind: str) -> None:
    event = builder()
    assert_valid(event, kind)
    assert set(event) == {"type", "event_id"}


def test_every_event_gets_its_own_id() -> None:
    ids = {events.input_audio_buffer_commit()["event_id"] for _ in range(50)}
    assert len(ids) == 50


def test_client_event_keeps_a_given_event_id_and_drops_none_fields() -> None:
    event = client_event("response.cancel", event_id="evt_mine", response_id=None)
    assert event == {"type": "response.cancel", "event_id": "evt_mine"}


def test_client_event_with_a_bad_field_raises_naming_field_and_event() -> None:
    with pytest.raises(InvalidEventError) as info:
        client_event(
            "conversation.item.create",
            item={"type": "function_call_output", "call_id": "call_1", "output": {"t": 21}},
        )
    error = info.value
    assert error.param == "item.output"
    assert "conversation.item.create" in error.message
    assert "item.output" in error.message
    assert str(error) == error.message
    # A usage error: the CLI prints it with a hint and the usage exit code.
    assert isinstance(error, UsageError)
    assert error.hint


def test_client_event_with_an_unknown_type_raises() -> None:
    with pytest.raises(InvalidEventError) as info:
        client_event("response.audio.delta")
    assert info.value.param == "type"
    assert "response.audio.delta" in info.value.message


def test_encode_refuses_an_invalid_event() -> None:
    bad = {"type": "conversation.item.truncate", "item_id": "i", "content_index": 0}
    result: str | None = None
    with pytest.raises(InvalidEventError) as info:
        result = encode_client_event(bad)
    assert result is None
    assert info.value.param == "audio_end_ms"


def test_encode_is_one_compact_json_object_keeping_unicode() -> None:
    text = encode_client_event(events.user_text("Grüße, 世界"))
    assert "\n" not in text
    assert "Grüße, 世界" in text
    assert ", " not in text.replace("Grüße, 世界", "")


# Parsing what the server sends.


def test_response_done_sample_becomes_the_sdk_model() -> None:
    event = parse_server_event(json.dumps(RESPONSE_DONE))
    assert isinstance(event, ResponseDoneEvent)
    usage = event.response.usage
    assert usage is not None
    assert (usage.total_tokens, usage.input_tokens, usage.output_tokens) == (253, 132, 121)
    assert usage.input_token_details is not None
    assert usage.input_token_details.cached_tokens == 64
    assert usage.output_token_details is not None
    assert usage.output_token_details.audio_tokens == 91
    assert event_type(event) == "response.done"


def test_bytes_are_parsed_like_text() -> None:
    event = parse_server_event(json.dumps(RESPONSE_DONE).encode())
    assert isinstance(event, ResponseDoneEvent)


def test_transcript_delta_with_obfuscation_parses_typed() -> None:
    # The real service adds `obfuscation`; the client parser ignores it (the strict check in
    # schema.py flags it, which only matters for what our own server sends).
    event = parse_server_event(json.dumps(TRANSCRIPT_DELTA_WITH_OBFUSCATION))
    assert isinstance(event, ResponseAudioTranscriptDeltaEvent)
    assert event.delta == "Hello"
    assert event_type(event) == "response.output_audio_transcript.delta"


def test_unknown_type_is_kept_raw() -> None:
    raw = {"type": "response.brand_new", "event_id": "event_1", "stuff": [1, 2]}
    event = parse_server_event(json.dumps(raw))
    assert isinstance(event, UnknownServerEvent)
    assert event.type == "response.brand_new"
    assert event.raw == raw
    assert event_type(event) == "response.brand_new"


def test_known_type_with_a_broken_shape_is_unknown_with_a_problem() -> None:
    raw = {"type": "response.done", "event_id": "event_1", "response": "oops"}
    event = parse_server_event(json.dumps(raw))
    assert isinstance(event, UnknownServerEvent)
    assert event.type == "response.done"
    assert event.raw == raw
    assert event.problem
    assert event_type(event) == "response.done"


@pytest.mark.parametrize(
    "text", ["", "not json", "{", b"\xff\xfe\x00", '{"type": "error",}', "\ud800"]
)
def test_non_json_is_unknown(text: str | bytes) -> None:
    event = parse_server_event(text)
    assert isinstance(event, UnknownServerEvent)
    assert event.type == ""
    assert event.problem is not None
    assert event.problem.startswith("not JSON")


def test_non_json_preview_is_bounded() -> None:
    event = parse_server_event("x" * 10_000)
    assert isinstance(event, UnknownServerEvent)
    assert 0 < len(event.raw["text"]) <= 200


@pytest.mark.parametrize("text", ["null", "[1, 2]", '"response.done"', "42", "true"])
def test_json_that_is_not_an_object_is_unknown(text: str) -> None:
    event = parse_server_event(text)
    assert isinstance(event, UnknownServerEvent)
    assert event.type == ""
    assert event.raw == {"value": json.loads(text)}
    assert event.problem == "not a JSON object"


def test_deeply_nested_json_does_not_raise() -> None:
    for text in ("[" * 100_000, '{"a":' * 5_000 + "1" + "}" * 5_000):
        event = parse_server_event(text)
        assert isinstance(event, UnknownServerEvent)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
EVENT_TYPES = st.sampled_from(
    [
        "error",
        "response.done",
        "session.created",
        "conversation.item.added",
        "response.output_audio_transcript.delta",
        "rate_limits.updated",
        "output_audio_buffer.started",
        "no.such.event",
    ]
)
OBJECTS = st.dictionaries(st.text(max_size=10), JSON, max_size=6) | st.builds(
    lambda kind, rest: {**rest, "type": kind},
    EVENT_TYPES | JSON,
    st.dictionaries(st.text(max_size=10), JSON, max_size=6),
)


@settings(max_examples=100, deadline=None)
@given(st.text() | st.binary())
def test_parse_never_raises_on_arbitrary_text(text: str | bytes) -> None:
    event = parse_server_event(text)
    assert isinstance(event_type(event), str)


@settings(max_examples=60, deadline=None)
@given(OBJECTS)
def test_parse_never_raises_on_arbitrary_objects(obj: JsonObject) -> None:
    event = parse_server_event(json.dumps(obj))
    assert isinstance(event_type(event), str)
    if isinstance(event, UnknownServerEvent):
        assert event.raw == obj
    else:
        assert event_type(event) == obj["type"]
