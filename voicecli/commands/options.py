"""Options several commands share, declared once so their names and help stay the same."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

AUDIO = "Audio"

TransportMode = Literal["webrtc", "websocket", "auto"]

InputDevice = Annotated[
    str | None,
    typer.Option(help="Microphone: index or part of its name.", rich_help_panel=AUDIO),
]
OutputDevice = Annotated[
    str | None,
    typer.Option(help="Speaker: index or part of its name.", rich_help_panel=AUDIO),
]
Model = Annotated[str | None, typer.Option(help="Realtime model.")]
Voice = Annotated[str | None, typer.Option(help="Voice, e.g. marin or cedar.")]
Instructions = Annotated[str | None, typer.Option(help="System instructions.")]
Transport = Annotated[
    TransportMode | None,
    typer.Option(help="webrtc, websocket, or auto (WebSocket when WebRTC cannot connect)."),
]
ApiKey = Annotated[str | None, typer.Option("--api-key", help="API key (prefer env).")]


def session_flags(
    api_key: str | None, model: str | None, voice: str | None, instructions: str | None
) -> dict[str, object]:
    """The settings these options override (None: not given)."""
    return {
        "api.api_key": api_key,
        "session.model": model,
        "session.voice": voice,
        "session.instructions": instructions,
    }
