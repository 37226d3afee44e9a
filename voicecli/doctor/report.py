"""The doctor's output: a Rich table for people, JSON (voicecli/data/doctor.schema.json) for
machines and bug reports. Every string is redacted once more on the way out: no key, token or
Bearer header can reach either, whatever a check put in its data.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from voicecli import __version__
from voicecli.doctor.checks import STATUSES, CheckResult, exit_code
from voicecli.doctor.suite import DoctorReport
from voicecli.redact import redact

FORMAT = "voicecli.doctor/1"
_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def summary(results: list[CheckResult]) -> dict[str, int]:
    counts = Counter(r.status for r in results)
    return {status: counts.get(status, 0) for status in STATUSES}


def to_json(report: DoctorReport) -> dict[str, Any]:
    """The ``--json`` object; validated by tests against doctor.schema.json."""
    return {
        "format": FORMAT,
        "voicecli": __version__,
        "duration_s": round(report.duration_s, 3),
        "exit_code": exit_code(report.results),
        "summary": summary(report.results),
        "checks": [_check_json(r) for r in report.results],
    }


def _check_json(result: CheckResult) -> dict[str, Any]:
    return {
        "section": result.section,
        "name": result.name,
        "status": result.status,
        "measured": redact(result.measured),
        "hint": redact(result.hint) if result.hint else None,
        "duration_s": round(result.duration_s, 3),
        "data": _scrub(result.data),
    }


def _scrub(value: Any) -> Any:
    """Redact every string inside ``value``; anything not JSON-native becomes its text."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


def dumps(report: DoctorReport) -> str:
    return json.dumps(to_json(report), indent=2, ensure_ascii=False)


def table(report: DoctorReport) -> Table:
    """check | status | measured, with the hint under what was measured; a row per section."""
    grid = Table(title="voicecli doctor", title_justify="left", expand=False)
    grid.add_column("check", no_wrap=True)
    grid.add_column("status", no_wrap=True)
    grid.add_column("measured / hint", overflow="fold")
    section = None
    for r in report.results:
        if r.section != section:
            section = r.section
            grid.add_row(Text(section, style="bold underline"), "", "")
        # Text, not markup strings: a measured "[…]" (an IPv6 address, a device name) stays as is.
        cell = Text(redact(r.measured))
        if r.hint:
            cell.append("\n→ " + redact(r.hint), style=_STYLE[r.status] if r.status != "ok" else "")
        grid.add_row(Text(r.name), Text(r.status, style=_STYLE[r.status]), cell)
    return grid


def footer(report: DoctorReport) -> Text:
    counts = summary(report.results)
    parts = ", ".join(f"{n} {status}" for status, n in counts.items())
    code = exit_code(report.results)
    verdict = {0: "all ok", 1: "warnings", 2: "failures"}[code]
    return Text(f"{verdict}: {parts} in {report.duration_s:.1f} s (exit code {code})")


def render(report: DoctorReport, console: Console) -> None:
    console.print(table(report))
    console.print(footer(report))
