"""Run doctor checks: groups side by side, the checks of one group in order, each time-boxed.

Groups are independent (network, API and environment checks each form their own; the audio
checks form one group, because PortAudio is not thread-safe and each step needs the device the
previous one found). Every check gets its own timeout, and whatever it raises becomes a ``fail``
with a one-line message, so one broken check never hides the others or prints a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from voicecli.doctor.checks import Check, CheckResult, Finding, fail
from voicecli.errors import VoiceCliError
from voicecli.redact import redact

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Planned:
    """A check and its group: one group's checks run in order, groups run side by side."""

    group: str
    check: Check


async def run_plan(plan: Sequence[Planned]) -> list[CheckResult]:
    """Every check of the plan; the results in the plan's order, whatever order they ran in."""
    results: dict[int, CheckResult] = {}
    groups: dict[str, list[int]] = {}
    for index, item in enumerate(plan):
        groups.setdefault(item.group, []).append(index)
    async with asyncio.TaskGroup() as tasks:
        for indexes in groups.values():
            tasks.create_task(_run_group(plan, indexes, results))
    return [results[index] for index in range(len(plan))]


async def _run_group(
    plan: Sequence[Planned], indexes: list[int], out: dict[int, CheckResult]
) -> None:
    for index in indexes:
        out[index] = await run_check(plan[index].check)


async def run_check(check: Check) -> CheckResult:
    """One check under its timeout; never raises (except cancellation)."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(check.timeout_s):
            finding = await check.run()
    except TimeoutError:
        finding = fail(
            f"did not finish within {check.timeout_s:g} s",
            hint="something on the way does not answer; the other rows may say what",
        )
    except VoiceCliError as exc:
        finding = fail(one_line(exc.message), exc.hint)
    except Exception as exc:  # a bug in a check must not stop the others
        log.debug("doctor check %s/%s crashed", check.section, check.name, exc_info=True)
        finding = fail(f"internal error: {type(exc).__name__}: {one_line(str(exc))}", _BUG_HINT)
    return _result(check, finding, time.monotonic() - started)


_BUG_HINT = "this is a bug in voicecli doctor: rerun with --debug and please report it"


def _result(check: Check, finding: Finding, duration_s: float) -> CheckResult:
    hint = finding.hint
    if not hint and finding.status in ("warn", "fail"):  # every problem comes with a next step
        hint = "rerun with --debug for details"
    return CheckResult(
        section=check.section,
        name=check.name,
        status=finding.status,
        measured=redact(finding.measured),
        hint=redact(hint) if hint else None,
        data=finding.data,
        duration_s=duration_s,
    )


def one_line(text: str) -> str:
    """Collapse whitespace (service and OS messages may span lines), redacted."""
    return " ".join(redact(text).split())


async def in_thread(fn: Callable[[], T]) -> T:
    """Run blocking ``fn`` in a daemon thread and await it.

    Not asyncio.to_thread: a call that hangs for good (a dead audio server, a stuck resolver)
    would then keep ``asyncio.run`` waiting for the default executor at exit, and the run's
    time box would mean nothing. A daemon thread is simply left behind.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)  # type: ignore[arg-type]  # T when error is None

    def work() -> None:
        try:
            value = fn()
        except BaseException as exc:  # handed to the awaiting task, which re-raises it
            _post(loop, settle, None, exc)
        else:
            _post(loop, settle, value, None)

    threading.Thread(target=work, name="voicecli-doctor", daemon=True).start()
    return await future


def _post(
    loop: asyncio.AbstractEventLoop,
    settle: Callable[[T | None, BaseException | None], None],
    value: T | None,
    error: BaseException | None,
) -> None:
    # RuntimeError: the loop is closed, so nobody waits for this result any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(settle, value, error)
