"""`voicecli auth login|logout|status`: keep the API key in the OS keyring; see which key is used.

Keys are shown masked (``sk-…abcd``) everywhere. ``login`` checks the key against the configured
endpoint (``GET {base}/models``) before storing it, unless ``--no-verify``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Annotated

import typer

from voicecli.auth.keys import MemoryKeyStore, ResolvedKey, SystemKeyring, resolve_key
from voicecli.commands.base import boundary, options
from voicecli.config import Settings, load_settings
from voicecli.errors import UsageError
from voicecli.redact import mask_key


async def _verify(settings: Settings, key: str) -> int:
    from voicecli.auth.credentials import verify_key  # the SDK loads only to check a key

    return await verify_key(settings, key)


def _base_url(settings: Settings) -> str:
    from voicecli.auth.credentials import api_endpoint

    return api_endpoint(settings).base_url


NO_KEY = "no key: voicecli will use the embedded local server"

auth_app = typer.Typer(
    help="Store the API key in the OS keyring, remove it, or see which key voicecli uses.",
    no_args_is_help=True,
)


@auth_app.command("login")
def login_command(
    ctx: typer.Context,
    from_stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the key from one line of standard input.")
    ] = False,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Store the key without checking it first.")
    ] = False,
) -> None:
    """Store an API key in the OS keyring, after checking that the endpoint accepts it."""
    with boundary(ctx):
        settings = load_settings(options(ctx).config_path, os.environ)
        key = read_key(from_stdin)
        if not no_verify:
            asyncio.run(_verify(settings, key))
            typer.echo(f"{_base_url(settings)} accepted the key")
        SystemKeyring().set(key)
        typer.echo(f"stored key {mask_key(key)} in the keyring")
        overriding = _outside_keyring(settings)
        if overriding is not None and not overriding.source.startswith("file:"):
            # Otherwise the user would wonder why `auth status` still shows another key.
            typer.echo(
                f"note: {_source_name(overriding)} is set and takes precedence over the keyring",
                err=True,
            )


@auth_app.command("logout")
def logout_command(ctx: typer.Context) -> None:
    """Remove the API key from the OS keyring."""
    with boundary(ctx):
        settings = load_settings(options(ctx).config_path, os.environ)
        removed = SystemKeyring().delete()
        typer.echo("removed the key from the keyring" if removed else "no key in the keyring")
        remaining = _outside_keyring(settings)
        if remaining is not None:
            typer.echo(
                f"note: voicecli still has a key ({remaining.masked}) from "
                f"{_source_name(remaining)}",
                err=True,
            )


@auth_app.command("status")
def status_command(
    ctx: typer.Context,
    verify: Annotated[
        bool, typer.Option("--verify", help="Check the key against the endpoint.")
    ] = False,
) -> None:
    """Show which key voicecli uses (masked) and where it comes from."""
    with boundary(ctx):
        settings = load_settings(options(ctx).config_path, os.environ)
        resolved = resolve_key(settings, SystemKeyring())
        if resolved is None:
            typer.echo(NO_KEY)
            return
        base_url = _base_url(settings)
        typer.echo(f"key: {resolved.masked}  ({resolved.source})")
        typer.echo(f"endpoint: {base_url}")
        typer.echo(f"auth mode: {settings.auth.mode}")
        if verify:
            count = asyncio.run(_verify(settings, resolved.value))
            typer.echo(f"verified: the endpoint accepted the key ({count} models)")


def read_key(from_stdin: bool) -> str:
    """The key from one line of stdin or a hidden prompt, checked to be one word."""
    if from_stdin:
        key = sys.stdin.readline().strip()
    else:
        key = str(typer.prompt("API key", hide_input=True)).strip()
    if not key:
        raise UsageError("no key given", hint="pass the key on standard input with --stdin")
    if any(char.isspace() for char in key):
        # e.g. "Bearer sk-..." or two keys pasted at once: storing it would only fail later.
        raise UsageError(
            "the key contains whitespace; expected just the key",
            hint="paste only the key itself (sk-...)",
        )
    return key


def _outside_keyring(settings: Settings) -> ResolvedKey | None:
    """The key voicecli would use if the keyring were empty."""
    return resolve_key(settings, MemoryKeyStore())


def _source_name(key: ResolvedKey) -> str:
    """How a source reads in a sentence: `--api-key`, `OPENAI_API_KEY`, `the keyring`, a path."""
    kind, _, name = key.source.partition(":")
    return {"flag": "--api-key", "env": name, "file": name}.get(kind, "the keyring")
