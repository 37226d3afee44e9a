"""The command line. Thin: parse options, build settings, call into the app, map errors."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Annotated

import typer

from voicecli import __version__
from voicecli.commands import ask as ask_cmd
from voicecli.commands import auth as auth_cmd
from voicecli.commands import config as config_cmd
from voicecli.commands import devices as devices_cmd
from voicecli.commands import doctor as doctor_cmd
from voicecli.commands import serve as serve_cmd
from voicecli.commands import talk as talk_cmd
from voicecli.commands.base import GlobalOptions, setup_logging

app = typer.Typer(
    name="voicecli",
    help="A terminal voice assistant for the OpenAI Realtime API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("talk")(talk_cmd.talk)
app.command("ask")(ask_cmd.ask)
app.command("serve")(serve_cmd.serve)
app.command("devices")(devices_cmd.devices)
app.command("doctor")(doctor_cmd.doctor)
app.add_typer(config_cmd.config_app, name="config")
app.add_typer(auth_cmd.auth_app, name="auth")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"voicecli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Debug logs and tracebacks.")] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Config file (default: $VOICECLI_CONFIG or user dir)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """voicecli: talk to the OpenAI Realtime API from your terminal."""
    if not isinstance(ctx.obj, GlobalOptions):
        ctx.obj = GlobalOptions()
    ctx.obj.debug = debug
    ctx.obj.config_path = config
    setup_logging(debug)


def main() -> None:
    try:
        app()
    finally:
        # Exiting: the interpreter's last cyclic collection over the SDK's and aiortc's many
        # objects takes 0.2-0.4 s, which `q` and Ctrl-C would feel. Nothing needs collecting.
        gc.freeze()
