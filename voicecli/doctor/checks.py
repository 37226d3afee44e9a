"""What a doctor check is and what it reports.

A check is one small async function returning a :class:`Finding` (status, what it measured, a
hint when not ok, and machine-readable data). The runner wraps it into a :class:`CheckResult`
with its section, name and duration. Statuses, worst last: skip < ok < warn < fail; a skipped
check (not asked for, or its prerequisite is missing) does not change the exit code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "warn", "fail", "skip"]
STATUSES: tuple[Status, ...] = ("ok", "warn", "fail", "skip")
_SEVERITY: dict[Status, int] = {"skip": 0, "ok": 0, "warn": 1, "fail": 2}

Data = dict[str, Any]


@dataclass(frozen=True)
class Finding:
    """What one check found: the status, the measured value as text, and a hint if not ok."""

    status: Status
    measured: str
    hint: str | None = None
    data: Data = field(default_factory=dict)


def ok(measured: str, **data: Any) -> Finding:
    return Finding("ok", measured, None, data)


def warn(measured: str, hint: str, **data: Any) -> Finding:
    return Finding("warn", measured, hint, data)


def fail(measured: str, hint: str | None, **data: Any) -> Finding:
    return Finding("fail", measured, hint, data)


def skip(measured: str, hint: str | None = None, **data: Any) -> Finding:
    return Finding("skip", measured, hint, data)


@dataclass(frozen=True)
class CheckResult:
    """One row of the report (and one object of ``checks`` in ``--json``)."""

    section: str  # audio | network | api | environment
    name: str
    status: Status
    measured: str
    hint: str | None = None
    data: Data = field(default_factory=dict)
    duration_s: float = 0.0


CheckFn = Callable[[], Awaitable[Finding]]


@dataclass(frozen=True)
class Check:
    """A named check and the time it may take; the runner enforces the timeout."""

    section: str
    name: str
    run: CheckFn
    timeout_s: float


def severity(status: Status) -> int:
    return _SEVERITY[status]


def exit_code(results: list[CheckResult]) -> int:
    """0 when everything that ran is ok, 1 with warnings, 2 with failures."""
    return max((severity(r.status) for r in results), default=0)
