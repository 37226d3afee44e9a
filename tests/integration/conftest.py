"""Helpers for integration tests: `voicecli serve` in-process and a plain aiortc offerer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from voicecli.server.app import RunningServer, running_server
from voicecli.server.echo import EchoResponder
from voicecli.server.http import ServerConfig
from voicecli.server.script import ScriptedResponder, load_script
from voicecli.testing.offerer import Offerer


def serve(**config: Any) -> contextlib.AbstractAsyncContextManager[RunningServer]:
    config.setdefault("responder", EchoResponder)
    return running_server(ServerConfig(**config))


# A text turn makes the model call get_time(UTC); the tool's output makes it say a line.
GET_TIME_SCRIPT = """
[[step]]
on = "text"
[[step.reply]]
call = "get_time"
arguments = {{ timezone = "UTC" }}
[[step]]
on = "tool_output"
match = '{match}'
[[step.reply]]
say = "{say}"
"""


def get_time_script(match: str = '"timezone": "UTC"', say: str = "It is time for tea.") -> str:
    return GET_TIME_SCRIPT.format(match=match, say=say)


def scripted(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "script.toml"
    path.write_text(text)
    script = load_script(path)
    return lambda: ScriptedResponder(script)


@contextlib.asynccontextmanager
async def connected(server: RunningServer, **options: Any) -> AsyncIterator[Offerer]:
    """A connected offerer; on exit, asserts every server event fit the SDK's types."""
    client = Offerer(server.base_url, **options)
    try:
        await client.connect()
        yield client
    finally:
        await client.close()
    assert client.problems == [], f"off-schema server events: {client.problems}"


def user_text(text: str) -> dict[str, Any]:
    """A client event adding a user text message."""
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }
