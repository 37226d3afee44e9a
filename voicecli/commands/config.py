"""`voicecli config show|path|init`: see the effective settings, find the file, create it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from voicecli.commands.base import boundary, options
from voicecli.config import (
    Settings,
    config_file_path,
    example_config_text,
    load_settings,
)
from voicecli.errors import ConfigError, UsageError

config_app = typer.Typer(
    help="Show the effective settings, print the config file path, or create the file.",
    no_args_is_help=True,
)


@config_app.command("show")
def show_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Show each effective setting and where it came from (keys are masked)."""
    with boundary(ctx):
        settings = load_settings(options(ctx).config_path, os.environ)
        typer.echo(render_json(settings) if as_json else render_text(settings))


@config_app.command("path")
def path_command(ctx: typer.Context) -> None:
    """Print the path of the config file that would be used."""
    with boundary(ctx):
        target = config_file_path(options(ctx).config_path, os.environ)
        typer.echo(str(target))
        if not target.exists():
            # stderr, so that `$(voicecli config path)` stays just the path.
            typer.echo("(the file does not exist; `voicecli config init` creates it)", err=True)


@config_app.command("init")
def init_command(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write the documented example config (every key at its default) to the config path."""
    with boundary(ctx):
        target = config_file_path(options(ctx).config_path, os.environ)
        write_example(target, force=force)
        typer.echo(f"wrote {target}")


def render_text(settings: Settings) -> str:
    """One aligned line per key: ``key = value  (source)``."""
    items = settings.items()
    width = max(len(item.key) for item in items)
    return "\n".join(f"{item.key:<{width}} = {item.display}  ({item.source})" for item in items)


def render_json(settings: Settings) -> str:
    table = {item.key: {"value": item.value, "source": item.source} for item in settings.items()}
    return json.dumps({"settings": table}, indent=2, ensure_ascii=False)


def write_example(target: Path, *, force: bool) -> None:
    """Write the example file, creating directories; never replace a file unless forced."""
    if target.exists() and not force:
        raise UsageError(
            f"{target} already exists; not overwriting it",
            hint="pass --force to replace it with the example",
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_private(target, example_config_text())
    except OSError as exc:
        raise ConfigError(
            f"{target}: cannot write the config file: {exc.strerror or exc}",
            hint="choose another file with --config",
        ) from None


def _write_private(target: Path, text: str) -> None:
    # Owner-only from the start: the file is where users put an API key (an existing file forced
    # over keeps its own mode).
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
