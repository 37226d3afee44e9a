"""`voicecli serve`: the local, offline, OpenAI-compatible realtime endpoint."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from voicecli.commands.base import boundary
from voicecli.errors import UsageError

if TYPE_CHECKING:  # the server (aiohttp, aiortc) loads only when serve runs: `ask` starts faster
    from voicecli.server.app import RunningServer
    from voicecli.server.responders import Responder

RESPONDERS = ("echo", "scripted", "assistant")
FAULTS = "Fault switches (for tests)"


def build_responder(name: str, script: Path | None) -> Callable[[], Responder]:
    """A factory of fresh responders, one per call (a script's steps are per call)."""
    if name == "echo":
        from voicecli.server.echo import EchoResponder

        return EchoResponder
    if name == "scripted":
        from voicecli.server.script import ScriptedResponder, load_script

        if script is None:
            raise UsageError(
                "--responder scripted needs --script FILE",
                hint="a TOML or JSON file of steps; see the README",
            )
        loaded = load_script(script)
        return lambda: ScriptedResponder(loaded)
    if name == "assistant":
        from voicecli.server.assistant import require_extra

        require_extra()  # MissingExtraError names `pip install 'voicecli[local]'`
        from voicecli.server.assistant.responder import assistant_factory

        return assistant_factory()
    raise UsageError(f"unknown responder '{name}'", hint=f"choose one of: {', '.join(RESPONDERS)}")


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.")] = 0,
    api_key: Annotated[
        list[str] | None, typer.Option("--api-key", help="An accepted standard key (repeatable).")
    ] = None,
    open_keys: Annotated[bool, typer.Option("--open", help="Accept any key.")] = False,
    responder: Annotated[
        str, typer.Option(help="What answers: echo, scripted or assistant.")
    ] = "echo",
    script: Annotated[Path | None, typer.Option(help="Script for --responder scripted.")] = None,
    speed: Annotated[float, typer.Option(help="Generation speed × real time.")] = 4.0,
    strict_tool_output: Annotated[bool, typer.Option(rich_help_panel=FAULTS)] = False,
    drop_after: Annotated[float | None, typer.Option(rich_help_panel=FAULTS)] = None,
    drop_on: Annotated[str | None, typer.Option(rich_help_panel=FAULTS)] = None,
    drop_silently: Annotated[bool, typer.Option(rich_help_panel=FAULTS)] = False,
    max_session: Annotated[float | None, typer.Option(rich_help_panel=FAULTS)] = None,
    fail_calls: Annotated[int | None, typer.Option(rich_help_panel=FAULTS)] = None,
    fail_calls_count: Annotated[int, typer.Option(rich_help_panel=FAULTS)] = 0,
    answer_delay_ms: Annotated[int, typer.Option(rich_help_panel=FAULTS)] = 0,
    rtp_loss: Annotated[float, typer.Option(rich_help_panel=FAULTS, help="Percent.")] = 0.0,
    unreachable_ice: Annotated[
        bool, typer.Option(rich_help_panel=FAULTS, help="WebRTC never connects (UDP blocked).")
    ] = False,
) -> None:
    """Run a local realtime endpoint (WebRTC), offline. Prints its base URL first.

    With --api-key it accepts only those keys (and the ephemeral keys it mints); without,
    any key (as --open). Example: voicecli serve --port 0 --api-key sk-local-test
    """
    from voicecli.server.app import serve_forever
    from voicecli.server.faults import FAILABLE_STATUSES, ServeFaults
    from voicecli.server.http import ServerConfig
    from voicecli.server.keys import KeyStore

    with boundary(ctx):
        if fail_calls is not None and fail_calls not in FAILABLE_STATUSES:
            raise UsageError(f"--fail-calls takes one of {FAILABLE_STATUSES}, not {fail_calls}")
        faults = ServeFaults(
            strict_tool_output=strict_tool_output,
            drop_after_s=drop_after,
            drop_on=drop_on,
            drop_silently=drop_silently,
            max_session_s=max_session,
            fail_calls=fail_calls,
            fail_calls_count=fail_calls_count,
            answer_delay_ms=answer_delay_ms,
            rtp_loss_percent=rtp_loss,
            unreachable_ice=unreachable_ice,
        )
        config = ServerConfig(
            responder=build_responder(responder, script),
            keys=KeyStore.of(api_key or [], open=open_keys or not api_key),
            faults=faults,
            generation_speed=speed,
        )
        asyncio.run(serve_forever(config, host, port, _announce))


def _announce(server: RunningServer) -> None:
    # The first stdout line is the base URL, so scripts can read it (tests do).
    print(server.base_url, flush=True)
    keys = server.endpoints.config.keys
    accepts = "any key" if keys.open else f"{len(keys.standard)} key(s) given with --api-key"
    print(
        f"voicecli serve: listening on {server.base_url}, accepting {accepts} (Ctrl-C to stop)",
        file=sys.stderr,
    )
