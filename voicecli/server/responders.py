"""What "the model" does in `voicecli serve`: the Responder seam and its built-in responders.

A responder never sees the network. The call session (server/session.py) asks it to transcribe
a committed user turn and to answer a response request; it answers with reply parts, which the
session turns into GA realtime events and paced audio. New responders (scripted, the offline
speech assistant) only implement this protocol.

Audio everywhere here is 48 kHz mono int16 numpy arrays (the WebRTC side's native rate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from voicecli.audio.formats import RATE_HZ as RATE_HZ  # re-exported for responders
from voicecli.audio.formats import Pcm as Pcm


class Trigger(StrEnum):
    """What asked for a response."""

    SPEECH = "speech"  # server VAD: end of a user speech turn (create_response)
    TEXT = "text"  # response.create after a user text item
    RESPONSE_CREATE = "response.create"  # response.create with no newer user input
    TOOL_OUTPUT = "tool_output"  # response.create after function_call_output items


@dataclass(frozen=True, slots=True)
class ToolOutput:
    call_id: str
    name: str
    output: str


@dataclass(frozen=True, slots=True)
class ResponseRequest:
    """Everything a responder may use to answer one response."""

    trigger: Trigger
    user_text: str | None = None  # the latest user text item, or the transcript of the speech
    user_audio: Pcm | None = None  # the latest committed user audio turn
    tool_outputs: tuple[ToolOutput, ...] = ()  # outputs sent since the previous response
    tool_names: tuple[str, ...] = ()  # tools the session declares
    instructions: str | None = None  # response.create's instructions, else the session's


@dataclass(frozen=True, slots=True)
class Speech:
    """Spoken output: audio with its transcript (sent as text when the session is text-only)."""

    transcript: str
    audio: Pcm


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """The model calls a tool; ``arguments`` is the JSON string the service sends."""

    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """The model's turn ends in an `error` event instead of a response."""

    code: str
    message: str
    type: str = "invalid_request_error"


@dataclass(frozen=True, slots=True)
class DropCall:
    """Fault trigger: the server drops the peer connection at this point of the reply."""


ReplyPart = Speech | FunctionCall | ErrorReply | DropCall


@dataclass(frozen=True, slots=True)
class Reply:
    parts: Sequence[ReplyPart] = field(default_factory=tuple)


class Responder(Protocol):
    """The pluggable "model" behind `voicecli serve`."""

    name: str

    async def transcribe(self, audio: Pcm) -> str | None:
        """The user's words for a committed speech turn, or None (no transcription events)."""
        ...

    async def respond(self, request: ResponseRequest) -> Reply:
        """The reply to one response request."""
        ...


def duration_s(audio: Pcm) -> float:
    return float(audio.shape[0]) / RATE_HZ
