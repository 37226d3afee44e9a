"""Doctor output: the JSON matches its published schema and carries no secret; the table."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import pytest
from rich.console import Console

from voicecli.doctor.checks import CheckResult
from voicecli.doctor.report import dumps, render, to_json
from voicecli.doctor.suite import DoctorReport

KEY = "sk-proj-Zx9abcdefghijklmnopqrstu1234"


def schema() -> dict[str, Any]:
    text = resources.files("voicecli").joinpath("data", "doctor.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def _report() -> DoctorReport:
    return DoctorReport(
        [
            CheckResult("audio", "recording", "ok", "RMS -23.0 dBFS", None, {"rms_dbfs": -23.0}),
            CheckResult("network", "endpoint", "fail", "connection refused", "is it running?"),
            CheckResult(
                "api",
                "key",
                "warn",
                "no key",
                "log in",
                {"nested": [{"header": f"Authorization: Bearer {KEY}"}], "raw": KEY},
            ),
            CheckResult("environment", "terminal", "skip", "not run [bold]x[/bold]"),
        ],
        duration_s=1.23456,
    )


def test_json_validates_against_the_schema_and_sums_up() -> None:
    data = json.loads(dumps(_report()))
    jsonschema.validate(data, schema())
    assert data["exit_code"] == 2
    assert data["summary"] == {"ok": 1, "warn": 1, "fail": 1, "skip": 1}
    assert [c["name"] for c in data["checks"]] == ["recording", "endpoint", "key", "terminal"]


def test_no_key_survives_into_the_json_even_from_a_checks_data() -> None:
    text = dumps(_report())
    assert KEY not in text
    assert "sk-…1234" in text


def test_a_problem_without_a_hint_does_not_validate() -> None:
    bad = to_json(DoctorReport([CheckResult("api", "x", "fail", "broken", None)], 0.1))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema())


def test_the_table_shows_measured_text_literally_and_the_verdict() -> None:
    console = Console(width=120, record=True, color_system=None)
    render(_report(), console)
    text = console.export_text()
    assert "not run [bold]x[/bold]" in text  # no Rich markup interpretation
    assert "→ is it running?" in text
    assert "failures: 1 ok, 1 warn, 1 fail, 1 skip in 1.2 s (exit code 2)" in text
    assert KEY not in text
