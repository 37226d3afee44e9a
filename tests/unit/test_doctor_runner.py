"""The doctor's runner: time boxes, crash isolation, grouping, report order and exit codes."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from voicecli.doctor.checks import Check, CheckResult, Finding, exit_code, ok, skip, warn
from voicecli.doctor.runner import Planned, in_thread, run_check, run_plan
from voicecli.errors import NetworkError


def _sleeper(seconds: float, finding: Finding) -> Check:
    async def run() -> Finding:
        await asyncio.sleep(seconds)
        return finding

    return Check("network", f"sleep {seconds}", run, timeout_s=5.0)


def _result(status: str) -> CheckResult:
    return CheckResult("api", "x", status, "m", "h" if status in ("warn", "fail") else None)  # type: ignore[arg-type]


async def test_a_check_that_overruns_its_time_box_fails_at_the_box() -> None:
    async def stuck() -> Finding:
        await asyncio.Event().wait()
        return ok("never")

    started = time.monotonic()
    result = await run_check(Check("network", "stuck", stuck, timeout_s=0.2))
    assert time.monotonic() - started < 0.5
    assert result.status == "fail"
    assert "0.2 s" in result.measured and result.hint


async def test_a_crashing_check_is_one_line_fail_and_the_others_still_run() -> None:
    async def crash() -> Finding:
        raise KeyError("line one\nline two")

    plan = [
        Planned("a", Check("audio", "crash", crash, 1.0)),
        Planned("a", _sleeper(0.0, ok("after the crash"))),
    ]
    first, second = await run_plan(plan)
    assert first.status == "fail"
    assert "KeyError" in first.measured and "\n" not in first.measured
    assert first.hint and "bug" in first.hint
    assert second.status == "ok" and second.measured == "after the crash"


async def test_a_user_error_keeps_its_message_and_hint() -> None:
    async def refused() -> Finding:
        raise NetworkError("cannot reach example.invalid", hint="check the base URL")

    result = await run_check(Check("network", "x", refused, 1.0))
    assert (result.status, result.measured, result.hint) == (
        "fail",
        "cannot reach example.invalid",
        "check the base URL",
    )


async def test_groups_run_side_by_side_and_a_group_in_order() -> None:
    order: list[str] = []

    def step(name: str, seconds: float) -> Check:
        async def run() -> Finding:
            order.append(f"{name} start")
            await asyncio.sleep(seconds)
            order.append(f"{name} end")
            return ok(name)

        return Check("audio", name, run, 2.0)

    plan = [
        Planned("slow", step("a1", 0.3)),
        Planned("slow", step("a2", 0.0)),
        Planned("fast", step("b", 0.3)),
    ]
    results = await run_plan(plan)
    assert [r.name for r in results] == ["a1", "a2", "b"]  # plan order, not finishing order
    assert order.index("b start") < order.index("a1 end"), "the groups ran one after the other"
    assert order.index("a1 end") < order.index("a2 start")  # in order within a group


async def test_secrets_in_a_finding_are_redacted() -> None:
    key = "sk-proj-abcdefghijklmnop1234"

    async def leaky() -> Finding:
        return warn(f"the service echoed {key}", f"Bearer {key}")

    result = await run_check(Check("api", "leak", leaky, 1.0))
    assert key not in result.measured and key not in (result.hint or "")
    assert "sk-…1234" in result.measured


async def test_a_problem_always_comes_with_a_hint() -> None:
    async def bare() -> Finding:
        return Finding("fail", "broken", None)

    assert (await run_check(Check("api", "bare", bare, 1.0))).hint


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ([], 0),
        (["ok", "skip"], 0),
        (["ok", "warn", "skip"], 1),
        (["warn", "fail", "ok"], 2),
        (["skip", "skip"], 0),
    ],
)
def test_exit_code_is_the_worst_status(statuses: list[str], code: int) -> None:
    assert exit_code([_result(s) for s in statuses]) == code


async def test_in_thread_returns_raises_and_does_not_hold_the_loop() -> None:
    assert await in_thread(lambda: threading.current_thread().daemon) is True

    def boom() -> None:
        raise ValueError("from the thread")

    with pytest.raises(ValueError, match="from the thread"):
        await in_thread(boom)
    gate = threading.Event()
    # A blocked call can be abandoned by a time box: the loop stays free meanwhile.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await in_thread(gate.wait)
    gate.set()


async def test_skip_does_not_need_a_hint() -> None:
    result = await run_check(Check("audio", "s", lambda: _done(skip("not asked")), 1.0))
    assert result.status == "skip" and result.hint is None


async def _done(finding: Finding) -> Finding:
    return finding
