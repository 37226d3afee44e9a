"""`voicecli ask`: one scripted prompt, text or WAV in; transcript, JSON and WAV out."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from voicecli.auth.keys import SystemKeyring
from voicecli.commands.base import boundary, options
from voicecli.commands.options import (
    ApiKey,
    Instructions,
    Model,
    Transport,
    Voice,
    session_flags,
)
from voicecli.config import load_settings
from voicecli.errors import UsageError

if TYPE_CHECKING:  # the client (openai, aiortc) loads only when ask runs: other commands start fast
    from voicecli.app import AskResult


def ask(
    ctx: typer.Context,
    text: Annotated[str | None, typer.Argument(help="The prompt; '-' reads stdin.")] = None,
    input_wav: Annotated[
        Path | None, typer.Option("--in", help="A WAV question, streamed in real time.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the reply audio to this WAV.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    text_only: Annotated[bool, typer.Option(help="Ask for a text answer, no audio.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds for the whole answer.")] = 60.0,
    model: Model = None,
    voice: Voice = None,
    instructions: Instructions = None,
    transport: Transport = None,
    api_key: ApiKey = None,
) -> None:
    """Ask one question and print the answer.

    Examples: voicecli ask "What time is it in Tokyo?"; voicecli ask --in q.wav --out a.wav --json
    """
    from voicecli.app import AskRequest, run_ask

    with boundary(ctx):
        _check_out(out, text_only)
        request = AskRequest(
            text=_prompt(text, input_wav),
            wav=input_wav,
            out=out,
            text_only=text_only,
            timeout_s=timeout,
        )
        flags = {
            **session_flags(api_key, model, voice, instructions),
            "network.transport": transport,
        }
        settings = load_settings(options(ctx).config_path, os.environ, flags)
        result = asyncio.run(run_ask(settings, request, SystemKeyring()))
        typer.echo(json.dumps(to_json(result), indent=2) if as_json else result.transcript)


def _check_out(out: Path | None, text_only: bool) -> None:
    if out is not None and text_only:
        raise UsageError(
            "--out needs audio, but --text-only asks for a text answer",
            hint="drop one of --out and --text-only",
        )


def _prompt(text: str | None, wav: Path | None) -> str | None:
    if text is not None and wav is not None:
        raise UsageError("give either TEXT or --in, not both")
    if text is None and wav is None:
        raise UsageError(
            "nothing to ask", hint='voicecli ask "a question", `-` for stdin, or --in question.wav'
        )
    if text == "-":
        text = sys.stdin.read().strip()
    if wav is None and not text:
        raise UsageError("the prompt is empty")
    return text


def to_json(result: AskResult) -> dict[str, Any]:
    tokens = result.usage.tokens
    return {
        "transcript": result.transcript,
        "user_transcript": result.user_transcript,
        "tool_calls": [
            {
                "name": c.name,
                "call_id": c.call_id,
                "ok": c.ok,
                "output": c.output,
                "duration_s": round(c.duration_s, 3),
            }
            for c in result.tool_calls
        ],
        "usage": {
            "input_tokens": tokens.input,
            "cached_tokens": tokens.cached,
            "output_tokens": tokens.output,
            "text_in": tokens.text_in,
            "audio_in": tokens.audio_in,
            "text_out": tokens.text_out,
            "audio_out": tokens.audio_out,
        },
        "cost_usd": _money(result.usage.total_cost),
        "call_id": result.call_id,
        "transport": result.transport,
        "model": result.model,
        "endpoint": result.endpoint,
        "timings": {k: None if v is None else round(v, 3) for k, v in result.timings.items()},
        "monotonic": result.monotonic,
        "errors": result.errors,
    }


def _money(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
