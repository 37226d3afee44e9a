"""The conversation so far, as items a new session can be given (reconnect, rollover).

Built from SessionEvents, in conversation order: a user turn takes its place when the service
first announces it (speech started, or the push-to-talk commit), not when its transcript arrives,
which is often after the reply has begun. Replayed as text (realtime-protocol.md §4.4): user
messages as ``input_text``, assistant messages as ``output_text``, tool calls as
``function_call`` followed by their ``function_call_output``. Audio is not replayed: the service
would bill it again, and a transcript carries the meaning.

Left out: a user turn without a transcript (transcription off, or not finished), and a tool
call without an output yet. An assistant reply cut off by the drop keeps the text received.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from voicecli.realtime.events import client_event
from voicecli.realtime.session_events import (
    AssistantText,
    SpeechMark,
    ToolCallFinished,
    ToolCallStarted,
    TurnCommitted,
    UserText,
)

JsonObject = dict[str, Any]


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    CALL = "call"


@dataclass
class _Entry:
    role: Role
    key: str  # item id (messages) or call id (tool calls)
    text: str = ""
    name: str = ""
    output: str | None = None


class History:
    """Ordered conversation entries; feed it every SessionEvent with :meth:`on_event`."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._by_key: dict[tuple[Role, str], _Entry] = {}

    def on_event(self, event: object) -> None:
        if isinstance(event, TurnCommitted) or (
            isinstance(event, SpeechMark) and event.state == "started"
        ):
            self._entry(Role.USER, event.item_id)  # the turn's place, before its transcript
        elif isinstance(event, UserText):
            self._text(self._entry(Role.USER, event.item_id), event.text, event.final)
        elif isinstance(event, AssistantText):
            self._text(self._entry(Role.ASSISTANT, event.item_id), event.text, event.final)
        elif isinstance(event, ToolCallStarted):
            entry = self._entry(Role.CALL, event.call_id)
            entry.name, entry.text = event.name, event.arguments
        elif isinstance(event, ToolCallFinished):
            self._entry(Role.CALL, event.result.call_id).output = event.result.output

    def items(self) -> list[JsonObject]:
        """The conversation items to create, in order."""
        items: list[JsonObject] = []
        for entry in self._entries:
            items += _items_of(entry)
        return items

    def call_items(self, call_id: str) -> list[JsonObject]:
        """One tool call and its output (empty until the output is known)."""
        entry = self._by_key.get((Role.CALL, call_id))
        return [] if entry is None else _items_of(entry)

    def replay(self) -> list[JsonObject]:
        """``conversation.item.create`` events for :meth:`items`, validated."""
        return [client_event("conversation.item.create", item=item) for item in self.items()]

    def awaiting_response(self) -> bool:
        """The conversation ends with tool output the model has not answered yet."""
        items = self.items()
        return bool(items) and items[-1]["type"] == "function_call_output"

    def __len__(self) -> int:
        return len(self.items())

    def _entry(self, role: Role, key: str) -> _Entry:
        entry = self._by_key.get((role, key))
        if entry is None:
            entry = self._by_key[(role, key)] = _Entry(role, key)
            self._entries.append(entry)
        return entry

    @staticmethod
    def _text(entry: _Entry, text: str, final: bool) -> None:
        entry.text = text if final else entry.text + text


def _items_of(entry: _Entry) -> list[JsonObject]:
    text = " ".join(entry.text.split())
    if entry.role is Role.USER:
        return [_message("user", "input_text", text)] if text else []
    if entry.role is Role.ASSISTANT:
        return [_message("assistant", "output_text", text)] if text else []
    if entry.output is None:
        return []
    call = {"type": "function_call", "call_id": entry.key, "name": entry.name}
    return [
        {**call, "arguments": entry.text or "{}"},
        {"type": "function_call_output", "call_id": entry.key, "output": entry.output},
    ]


def _message(role: str, kind: str, text: str) -> JsonObject:
    return {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}
