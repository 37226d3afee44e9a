"""voicecli.server.shapes: session.update semantics and shapes that pass the SDK's schema."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.realtime import ResponseDoneEvent, SessionCreatedEvent

from voicecli.realtime.schema import check_server_event
from voicecli.server import shapes

JsonObject = dict[str, Any]


def session_event(kind: str, session: JsonObject) -> JsonObject:
    return {"type": kind, "event_id": shapes.new_id("event"), "session": session}


def turn_detection(session: JsonObject) -> Any:
    return session["audio"]["input"]["turn_detection"]


# merge: session.update semantics.


def test_merge_changes_only_present_fields_and_merges_nested_objects() -> None:
    base = shapes.default_session()
    merged = shapes.merge(
        base, {"instructions": "Be brief.", "audio": {"output": {"voice": "cedar"}}}
    )
    assert merged["instructions"] == "Be brief."
    assert merged["audio"]["output"] == {**base["audio"]["output"], "voice": "cedar"}
    assert merged["audio"]["input"] == base["audio"]["input"]
    assert merged["model"] == base["model"]
    assert merged["id"] == base["id"]


def test_merge_does_not_modify_its_inputs() -> None:
    base = shapes.default_session()
    before = copy.deepcopy(base)
    update = {"audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}}
    update_before = copy.deepcopy(update)
    shapes.merge(base, update)
    assert base == before
    assert update == update_before


def test_turn_detection_is_replaced_whole() -> None:
    base = shapes.default_session()
    assert turn_detection(base)["type"] == "server_vad"
    assert "threshold" in turn_detection(base)
    update = {"audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}}
    merged = shapes.merge(base, update)
    # server_vad's threshold/silence_duration_ms must not survive a switch to semantic_vad.
    assert turn_detection(merged) == {"type": "semantic_vad"}
    assert merged["audio"]["input"]["format"] == base["audio"]["input"]["format"]
    assert check_server_event(session_event("session.updated", merged)) is None


def test_turn_detection_null_turns_vad_off() -> None:
    merged = shapes.merge(shapes.default_session(), {"audio": {"input": {"turn_detection": None}}})
    assert turn_detection(merged) is None
    assert check_server_event(session_event("session.updated", merged)) is None


def test_format_and_transcription_are_replaced_whole() -> None:
    base = shapes.merge(
        shapes.default_session(),
        {"audio": {"input": {"transcription": {"model": "whisper-1", "language": "en"}}}},
    )
    merged = shapes.merge(
        base,
        {
            "audio": {
                "input": {"transcription": {"model": "gpt-4o-mini-transcribe"}},
                "output": {"format": {"type": "audio/pcmu"}},
            }
        },
    )
    assert merged["audio"]["input"]["transcription"] == {"model": "gpt-4o-mini-transcribe"}
    assert merged["audio"]["output"]["format"] == {"type": "audio/pcmu"}  # no stale rate
    assert check_server_event(session_event("session.updated", merged)) is None


def test_clearing_fields_the_documented_way() -> None:
    base = shapes.merge(
        shapes.default_session(), {"tools": [{"type": "function", "name": "get_weather"}]}
    )
    merged = shapes.merge(base, {"instructions": "", "tools": []})
    assert merged["instructions"] == ""
    assert merged["tools"] == []


# default_session.


def test_default_session_passes_the_servers_schema() -> None:
    session = shapes.default_session()
    event = session_event("session.created", session)
    assert check_server_event(event) is None
    parsed = SessionCreatedEvent.model_validate(event)
    assert parsed.session.type == "realtime"


def test_default_session_shape() -> None:
    session = shapes.default_session("gpt-realtime-mini")
    assert session["model"] == "gpt-realtime-mini"
    assert session["object"] == "realtime.session"
    assert session["id"].startswith("sess_")
    assert session["output_modalities"] == ["audio"]
    assert turn_detection(session)["type"] == "server_vad"
    assert session["audio"]["output"]["voice"] == "marin"
    assert shapes.default_session()["model"] == shapes.DEFAULT_MODEL
    assert shapes.default_session()["id"] != shapes.default_session()["id"]


# split_words.


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab é\n!\t", max_size=40) | st.text())
def test_split_words_joins_back_exactly(text: str) -> None:
    words = shapes.split_words(text)
    assert "".join(words) == text
    assert all(words)


def test_split_words_one_word_a_delta() -> None:
    assert shapes.split_words("Hello there, friend!") == ["Hello", " there,", " friend!"]
    assert shapes.split_words("") == []


# usage and response objects.


def test_usage_totals_add_up() -> None:
    usage = shapes.usage(text_in=12, audio_in=30, text_out=7, audio_out=90)
    assert usage["input_tokens"] == 42
    assert usage["output_tokens"] == 97
    assert usage["total_tokens"] == 139
    details_in = usage["input_token_details"]
    assert details_in["text_tokens"] + details_in["audio_tokens"] == usage["input_tokens"]
    details_out = usage["output_token_details"]
    assert details_out["text_tokens"] + details_out["audio_tokens"] == usage["output_tokens"]
    cached = details_in["cached_tokens_details"]
    assert sum(cached.values()) == details_in["cached_tokens"] <= usage["input_tokens"]


COUNTS = st.integers(min_value=0, max_value=100_000)


@settings(max_examples=50, deadline=None)
@given(COUNTS, COUNTS, COUNTS, COUNTS)
def test_usage_in_response_done_passes_the_sdk_schema(a: int, b: int, c: int, d: int) -> None:
    usage = shapes.usage(text_in=a, audio_in=b, text_out=c, audio_out=d)
    item = shapes.assistant_item(
        "item_1", "completed", [{"type": "output_audio", "transcript": "Hi there."}]
    )
    response = shapes.response_object(
        "resp_1",
        "conv_1",
        shapes.default_session(),
        status="completed",
        output=[item],
        usage=usage,
    )
    event = {"type": "response.done", "event_id": "event_1", "response": response}
    assert check_server_event(event) is None
    parsed = ResponseDoneEvent.model_validate(event)
    assert parsed.response.usage is not None
    assert parsed.response.usage.total_tokens == a + b + c + d
    assert parsed.response.usage.input_tokens == a + b
    assert parsed.response.usage.output_tokens == c + d


def test_cancelled_response_done_passes_the_schema() -> None:
    response = shapes.response_object(
        "resp_1",
        "conv_1",
        shapes.default_session(),
        status="cancelled",
        status_details={"type": "cancelled", "reason": "turn_detected"},
        usage=shapes.usage(text_in=1, audio_in=2, text_out=3, audio_out=4),
    )
    event = {"type": "response.done", "event_id": "event_1", "response": response}
    assert check_server_event(event) is None


def test_response_object_follows_the_session_voice_and_format() -> None:
    session = shapes.merge(
        shapes.default_session(),
        {"audio": {"output": {"voice": "cedar", "format": {"type": "audio/pcmu"}}}},
    )
    response = shapes.response_object("resp_1", "conv_1", session)
    assert response["audio"]["output"] == {"format": {"type": "audio/pcmu"}, "voice": "cedar"}
    assert response["status"] == "in_progress"
    assert response["usage"] is None
    event = {"type": "response.created", "event_id": "event_1", "response": response}
    assert check_server_event(event) is None


def test_error_event_and_items_pass_the_schema() -> None:
    error = shapes.error_event(
        "unknown_parameter",
        "Unknown parameter: 'item.name'.",
        param="item.name",
        event_id="evt_1",
    )
    assert check_server_event(error) is None
    assert error["error"]["event_id"] == "evt_1"
    for item in (
        shapes.user_audio_item("item_1", "Hey, can you hear me?"),
        shapes.function_call_item(
            "item_2", "call_1", "get_weather", '{"city":"Paris"}', "completed"
        ),
    ):
        event = {
            "type": "conversation.item.done",
            "event_id": "event_1",
            "previous_item_id": None,
            "item": item,
        }
        assert check_server_event(event) is None
