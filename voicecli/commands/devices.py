"""`voicecli devices`: the audio devices PortAudio sees, to pick --input-device/--output-device."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from voicecli.audio.devices import DeviceInfo, list_devices
from voicecli.commands.base import boundary
from voicecli.errors import AudioError


def devices(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List audio devices: index, name, host API, channels, default rate, defaults.

    Give `voicecli talk --input-device` / `--output-device` (or audio.input_device /
    audio.output_device in the config) an index or a part of a name.
    """
    with boundary(ctx):
        found = list_devices()
        if as_json:  # scripts get the list even when it is empty
            typer.echo(json.dumps([d.to_json() for d in found], indent=2))
            return
        if not found:
            raise AudioError(
                "no audio devices found",
                hint="is the audio server (PulseAudio/PipeWire) running? `voicecli doctor` checks",
            )
        Console().print(device_table(found))


def device_table(found: list[DeviceInfo]) -> Table:
    table = Table(title="Audio devices", title_justify="left")
    for column in ("#", "name", "host API", "in", "out", "default rate", "default"):
        table.add_column(column, justify="right" if column in ("#", "in", "out") else "left")
    for d in found:
        marks = [m for m, on in (("input", d.default_input), ("output", d.default_output)) if on]
        table.add_row(
            str(d.index),
            d.name,
            d.hostapi,
            str(d.max_input_channels),
            str(d.max_output_channels),
            f"{d.default_samplerate:g} Hz",
            ", ".join(marks),
        )
    return table
