"""`voicecli doctor`: is it the microphone, the network, the key or the service?"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.console import Console

from voicecli.auth.keys import SystemKeyring, resolve_key
from voicecli.commands.base import boundary, options
from voicecli.commands.options import InputDevice, OutputDevice
from voicecli.config import SETTING_KEYS, Settings, config_file_path, load_settings
from voicecli.doctor.environment import ConfigState
from voicecli.errors import ConfigError

AUDIO = "Audio"
ONLINE = "Service"


def doctor(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (no secrets in it).")
    ] = False,
    play: Annotated[
        bool, typer.Option("--play", help="Play a short tone on the output.", rich_help_panel=AUDIO)
    ] = False,
    echo_test: Annotated[
        bool,
        typer.Option(
            "--echo-test", help="Play a chirp and measure its echo.", rich_help_panel=AUDIO
        ),
    ] = False,
    input_device: InputDevice = None,
    output_device: OutputDevice = None,
    call: Annotated[
        bool,
        typer.Option("--call", help="Make a real call, timing each stage.", rich_help_panel=ONLINE),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option("--yes", help="Do not ask before a billed --call.", rich_help_panel=ONLINE),
    ] = False,
    api_key: Annotated[str | None, typer.Option("--api-key", help="API key (prefer env).")] = None,
) -> None:
    """Check audio, network, the API key and the service; say what to fix.

    Every check reports ok / warn / fail, what it measured and a hint. It records 2 s from the
    microphone: say something. Exit code: 0 all ok, 1 warnings, 2 failures.

    Examples: voicecli doctor; voicecli doctor --play --echo-test; voicecli doctor --call --json
    """
    from voicecli.doctor import report as output
    from voicecli.doctor.api import needs_confirmation
    from voicecli.doctor.checks import exit_code
    from voicecli.doctor.suite import DoctorRequest, api_probe_for, run_doctor

    with boundary(ctx):
        settings, config = _settings(options(ctx).config_path, api_key)
        key = resolve_key(settings, SystemKeyring())
        request = DoctorRequest(input_device, output_device, play, echo_test, call, yes)
        if needs_confirmation(api_probe_for(settings, key, request)) and not yes:
            request = DoctorRequest(
                input_device, output_device, play, echo_test, call, _confirm(settings)
            )
        typer.echo("voicecli doctor: recording 2 s from the microphone, say something…", err=True)
        report = asyncio.run(run_doctor(settings, key, config, request))
        if as_json:
            typer.echo(output.dumps(report))
        else:
            output.render(report, Console())
        code = exit_code(report.results)
    raise typer.Exit(code)


def _confirm(settings: Settings) -> bool:
    """Ask before opening a billed session; without a terminal to ask on, do not call."""
    if not sys.stdin.isatty():
        return False
    host = urlsplit(settings.api.base_url).netloc
    return typer.confirm(
        f"--call opens a real Realtime session on {host} (billed; hung up at once). Continue?",
        default=False,
        err=True,
    )


def _settings(path: Path | None, api_key: str | None) -> tuple[Settings, ConfigState]:
    """The settings, and how loading the file went: a broken file is a finding, not an exit."""
    target = config_file_path(path, os.environ)
    flags = {"api.api_key": api_key}
    try:
        settings = load_settings(path, os.environ, flags)
    except ConfigError as exc:
        return _fallback(flags), ConfigState(target, target.exists(), exc)
    in_file = sum(settings.source(key).startswith("file:") for key in SETTING_KEYS)
    return settings, ConfigState(target, target.exists(), None, in_file)


def _fallback(flags: dict[str, str | None]) -> Settings:
    """Defaults, the environment and flags, without the file (os.devnull reads as empty)."""
    env = {k: v for k, v in os.environ.items() if k != "VOICECLI_CONFIG"}
    try:
        return load_settings(Path(os.devnull), env, flags)
    except ConfigError:  # the environment is what is broken: defaults and flags only
        return load_settings(Path(os.devnull), {}, flags)
