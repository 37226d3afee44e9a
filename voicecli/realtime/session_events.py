"""What the session tells its UIs (plain lines, JSON, the dashboard): immutable facts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voicecli.realtime.tools import ToolResult
from voicecli.realtime.transport import LinkState, NetworkStats


@dataclass(frozen=True, slots=True)
class UserText:
    item_id: str
    text: str  # a delta, or the whole transcript when final
    final: bool


@dataclass(frozen=True, slots=True)
class SpeechMark:
    """The service's VAD heard the user start or stop speaking (a turn's placeholder opens)."""

    item_id: str
    state: str  # started | stopped
    audio_ms: int  # audio_start_ms / audio_end_ms: position in the session's input audio


@dataclass(frozen=True, slots=True)
class TurnCommitted:
    """The user's audio since the last commit became a conversation item (its place in order)."""

    item_id: str
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    response_id: str


@dataclass(frozen=True, slots=True)
class AssistantText:
    response_id: str
    item_id: str
    text: str  # a delta, or the whole transcript when final
    final: bool


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    result: ToolResult


@dataclass(frozen=True, slots=True)
class ResponseFinished:
    response_id: str
    status: str  # completed | cancelled | failed | incomplete
    reason: str | None
    usage: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class AudioState:
    response_id: str
    state: str  # started | stopped | cleared


@dataclass(frozen=True, slots=True)
class ServiceErrorEvent:
    code: str | None
    message: str
    event_id: str | None  # the client event that caused it, when the service says


SessionEvent = (
    UserText
    | SpeechMark
    | TurnCommitted
    | ResponseStarted
    | AssistantText
    | ToolCallStarted
    | ToolCallFinished
    | ResponseFinished
    | AudioState
    | ServiceErrorEvent
    | LinkState
    | NetworkStats
)
