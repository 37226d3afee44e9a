"""What every command shares: global options (ctx.obj) and the error boundary."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import typer

from voicecli.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, VoiceCliError
from voicecli.redact import redact, redacting_handler


@dataclass
class GlobalOptions:
    """Options given before the command (``voicecli --debug serve``); reach commands as ctx.obj."""

    debug: bool = False
    config_path: Path | None = None


def options(ctx: typer.Context) -> GlobalOptions:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, GlobalOptions) else GlobalOptions()


def setup_logging(debug: bool) -> None:
    """Log to stderr, redacted; DEBUG only with --debug (SDP carries ICE credentials)."""
    root = logging.getLogger()
    root.handlers[:] = [redacting_handler(sys.stderr)]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


def error_line(text: str) -> None:
    """Write one redacted line to stderr."""
    typer.echo(redact(text), err=True)


@contextlib.contextmanager
def boundary(ctx: typer.Context) -> Iterator[None]:
    """Turn errors into one line, a hint and the documented exit code."""
    debug = options(ctx).debug
    try:
        try:
            yield
        except BaseExceptionGroup as group:  # from a TaskGroup: report its first real error
            raise first_error(group) from group
    except VoiceCliError as exc:
        if debug:
            error_line(traceback.format_exc())
        error_line(f"error: {exc.message}")
        if exc.hint:
            error_line(f"hint: {exc.hint}")
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:  # the last line of defence: a bug, reported without a traceback
        if debug:
            error_line(traceback.format_exc())
        error_line(f"error: internal error: {type(exc).__name__}: {exc}")
        error_line("hint: rerun with --debug for the traceback, and please report it")
        raise typer.Exit(EXIT_INTERNAL) from None


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first VoiceCliError in a (nested) exception group, else its first leaf."""
    leaves = list(_leaves(group))
    return next((e for e in leaves if isinstance(e, VoiceCliError)), leaves[0])


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error
