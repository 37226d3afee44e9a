"""`voicecli talk`: a live spoken conversation in the terminal."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from voicecli.auth.keys import SystemKeyring
from voicecli.commands.base import boundary, error_line, options
from voicecli.commands.options import (
    AUDIO,
    ApiKey,
    InputDevice,
    Instructions,
    Model,
    OutputDevice,
    Transport,
    Voice,
    session_flags,
)
from voicecli.config import Settings, load_settings

if TYPE_CHECKING:  # talk's modules (aiortc, Rich Live, PortAudio) load only when talk runs
    from voicecli.talk.app import TalkUi

TURNS = "Turn-taking"

Vad = Literal["server", "semantic", "off"]
Eagerness = Literal["low", "medium", "high", "auto"]
Duplex = Literal["full", "half"]


def talk(
    ctx: typer.Context,
    input_device: InputDevice = None,
    output_device: OutputDevice = None,
    duplex: Annotated[
        Duplex | None,
        typer.Option(help="half: mute the mic while the assistant speaks.", rich_help_panel=AUDIO),
    ] = None,
    vad: Annotated[
        Vad | None,
        typer.Option(help="Who ends your turn; off = push-to-talk (space).", rich_help_panel=TURNS),
    ] = None,
    eagerness: Annotated[
        Eagerness | None, typer.Option(help="semantic VAD eagerness.", rich_help_panel=TURNS)
    ] = None,
    silence_ms: Annotated[
        int | None,
        typer.Option(help="server VAD: silence that ends a turn.", rich_help_panel=TURNS),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="server VAD: 0..1 loudness.", rich_help_panel=TURNS)
    ] = None,
    plain: Annotated[bool, typer.Option(help="Transcript lines instead of the dashboard.")] = False,
    duration: Annotated[float | None, typer.Option(help="End the call after SECONDS.")] = None,
    stats_json: Annotated[Path | None, typer.Option(help="Write the summary as JSON.")] = None,
    transcript: Annotated[
        Path | None, typer.Option(help="Append each turn to FILE as it completes.")
    ] = None,
    event_log: Annotated[
        Path | None, typer.Option(help="Write every event as a JSON line (bug reports).")
    ] = None,
    model: Model = None,
    voice: Voice = None,
    instructions: Instructions = None,
    transport: Transport = None,
    api_key: ApiKey = None,
) -> None:
    """Talk with the assistant. Keys: space push-to-talk (--vad off), m mute, Esc interrupt, q quit.

    Example: voicecli talk --input-device USB --duplex half
    """
    from voicecli.talk.app import TalkRequest, run_talk

    with boundary(ctx):
        flags = {
            **session_flags(api_key, model, voice, instructions),
            "audio.input_device": input_device,
            "audio.output_device": output_device,
            "audio.duplex": duplex,
            "turns.vad": vad,
            "turns.eagerness": eagerness,
            "turns.silence_ms": silence_ms,
            "turns.threshold": threshold,
            "ui.plain": plain or None,
            "network.transport": transport,
        }
        settings = load_settings(options(ctx).config_path, os.environ, flags)
        request = TalkRequest(
            duration_s=duration,
            stats_json=stats_json,
            transcript=transcript,
            event_log=event_log,
        )
        use_plain = settings.ui.plain or not sys.stdout.isatty()
        asyncio.run(
            run_talk(
                settings,
                request,
                SystemKeyring(),
                lambda: make_ui(settings, use_plain),
                report=_print_summary,
            )
        )


def _print_summary(summary: dict[str, Any]) -> None:
    """At exit, also after a failure: the screen is back, the numbers go to stderr."""
    from voicecli.ui.summary import render_summary

    error_line(render_summary(summary))


def make_ui(settings: Settings, plain: bool) -> TalkUi:
    """The dashboard on a terminal; transcript lines otherwise (pipes, logs, --plain)."""
    from voicecli.realtime.pricing import PriceTable
    from voicecli.ui.state import DashboardConfig, initial_state

    config = DashboardConfig(
        prices=PriceTable.load(settings.pricing),
        model=settings.session.model,
        context_warn_tokens=settings.ui.context_warn_tokens,
    )
    state = initial_state(time.monotonic(), config)
    if plain:
        from voicecli.ui.plain import PlainPrinter

        return PlainPrinter(sys.stdout, state)
    from voicecli.ui.dashboard import Dashboard

    dashboard = Dashboard(state)
    dashboard.start()
    return dashboard
