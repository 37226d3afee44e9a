"""The replayable conversation (voicecli/realtime/history.py), fed SessionEvents as they come."""

from __future__ import annotations

from voicecli.realtime.events import validate_client_event
from voicecli.realtime.history import History
from voicecli.realtime.session_events import (
    AssistantText,
    ResponseStarted,
    SpeechMark,
    ToolCallFinished,
    ToolCallStarted,
    TurnCommitted,
    UserText,
)
from voicecli.realtime.tools import ToolResult


def said(history: History) -> list[tuple[str, str]]:
    out = []
    for item in history.items():
        if item["type"] == "message":
            out.append((item["role"], item["content"][0]["text"]))
        else:
            out.append((item["type"], item.get("output") or item.get("arguments") or ""))
    return out


def test_a_voice_turn_keeps_its_place_though_its_transcript_comes_after_the_reply() -> None:
    history = History()
    for event in [
        SpeechMark("item_u1", "started", 0),
        SpeechMark("item_u1", "stopped", 900),
        ResponseStarted("resp_1"),
        AssistantText("resp_1", "item_a1", "Hi", final=False),
        UserText("item_u1", "hello", final=False),
        AssistantText("resp_1", "item_a1", " there", final=False),
        UserText("item_u1", "hello there", final=True),
        AssistantText("resp_1", "item_a1", "Hi there!", final=True),
    ]:
        history.on_event(event)
    assert said(history) == [("user", "hello there"), ("assistant", "Hi there!")]


def test_a_push_to_talk_turn_takes_its_place_at_the_commit() -> None:
    history = History()
    history.on_event(TurnCommitted("item_u1", None))
    history.on_event(AssistantText("resp_1", "item_a1", "Sure.", final=True))
    history.on_event(UserText("item_u1", "can you help", final=True))
    assert said(history) == [("user", "can you help"), ("assistant", "Sure.")]


def test_a_reply_cut_off_keeps_what_arrived_and_an_unheard_turn_is_left_out() -> None:
    history = History()
    history.on_event(UserText("item_u1", "tell me a story", final=True))
    history.on_event(AssistantText("resp_1", "item_a1", "Once upon", final=False))
    history.on_event(AssistantText("resp_1", "item_a1", " a time", final=False))
    history.on_event(SpeechMark("item_u2", "started", 5000))  # no transcript (yet)
    assert said(history) == [("user", "tell me a story"), ("assistant", "Once upon a time")]


def test_tool_calls_replay_as_call_then_output_and_await_a_response() -> None:
    history = History()
    history.on_event(UserText("item_u1", "what time is it", final=True))
    history.on_event(ToolCallStarted("call_1", "get_time", '{"tz":"UTC"}'))
    history.on_event(ToolCallStarted("call_2", "slow_tool", "{}"))  # no output yet: left out
    assert not history.awaiting_response()
    history.on_event(ToolCallFinished(ToolResult("call_1", "get_time", "12:00", True, 0.01)))
    items = history.items()
    assert [i["type"] for i in items] == ["message", "function_call", "function_call_output"]
    assert items[1] == {
        "type": "function_call",
        "call_id": "call_1",
        "name": "get_time",
        "arguments": '{"tz":"UTC"}',
    }
    assert items[2] == {"type": "function_call_output", "call_id": "call_1", "output": "12:00"}
    assert history.awaiting_response()
    history.on_event(AssistantText("resp_2", "item_a2", "It is noon.", final=True))
    assert not history.awaiting_response()


def test_replay_events_are_valid_item_creates_in_order() -> None:
    history = History()
    history.on_event(UserText("item_u1", "  spaced\n out  ", final=True))
    history.on_event(AssistantText("resp_1", "item_a1", "ok", final=True))
    events = history.replay()
    for event in events:
        validate_client_event(event)  # raises when the service's schema would refuse it
    assert [e["item"]["role"] for e in events] == ["user", "assistant"]
    assert events[0]["item"]["content"] == [{"type": "input_text", "text": "spaced out"}]
    assert events[1]["item"]["content"] == [{"type": "output_text", "text": "ok"}]
    assert len(history) == 2
