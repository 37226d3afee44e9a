"""Which failures are worth another try, and how long to keep trying (issue 8).

Retryable: the network (unreachable, a stalled connect, a dropped call), the service's 5xx, a
429 that is a rate limit, a closed data channel, failed ICE, a silent peer. Fatal: a rejected
standard key and the account-level codes that another attempt cannot fix (livekit stops on the
same list, peers.md §2): ``invalid_api_key``, ``insufficient_quota``, ``account_deactivated``,
``billing_hard_limit_reached``, ``model_not_found``, and any other 4xx (the request itself is
wrong). A 401 for an ephemeral or token-URL key is worth exactly one more try with a fresh key.

Retries wait with exponential backoff and jitter (so many clients cut off together do not
return together), within a time budget, and say what they are doing through a callback.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from voicecli.errors import AuthError, NetworkError, OperationTimeout, ServiceError, VoiceCliError

T = TypeVar("T")

FATAL_CODES = frozenset(
    {
        "invalid_api_key",
        "insufficient_quota",
        "account_deactivated",
        "billing_hard_limit_reached",
        "model_not_found",
    }
)

FATAL_HINTS = {
    "invalid_api_key": "check the key: `voicecli auth status` shows which one is used",
    "insufficient_quota": "check the plan and billing of the API key's organisation",
    "account_deactivated": "the organisation's account is deactivated; ask its owner",
    "billing_hard_limit_reached": "the organisation hit its spending limit; raise it in billing",
    "model_not_found": "pick a model the key can use: --model, or session.model in the config",
}


class Verdict(StrEnum):
    RETRY = "retry"  # after a backoff delay
    RENEW = "renew"  # at once, with fresh credentials (once)
    FATAL = "fatal"


def classify(error: BaseException, *, renewable_key: bool) -> Verdict:
    """What to do about a failed connection attempt."""
    if isinstance(error, AuthError):
        return Verdict.RENEW if renewable_key else Verdict.FATAL
    if isinstance(error, ServiceError):
        return _service_verdict(error)
    if isinstance(error, NetworkError | OperationTimeout):
        return Verdict.RETRY
    return Verdict.FATAL  # usage, configuration, audio, or a bug: the same again would fail


def _service_verdict(error: ServiceError) -> Verdict:
    if error.code in FATAL_CODES:
        return Verdict.FATAL
    status = error.status
    if status is not None and (status == 429 or status >= 500):
        return Verdict.RETRY
    return Verdict.FATAL  # another 4xx, or the service refused the session itself


def is_fatal_code(code: str | None) -> bool:
    """An in-session ``error`` event that ends the conversation for good."""
    return code in FATAL_CODES


def with_hint(error: VoiceCliError) -> VoiceCliError:
    """The error as given, with the hint for its code when it had none of its own."""
    code = getattr(error, "code", None)
    if error.hint is None and isinstance(code, str) and code in FATAL_HINTS:
        error.hint = FATAL_HINTS[code]
    return error


@dataclass
class Backoff:
    """Exponential delays with jitter, within a budget of seconds since the first failure.

    Delay n (n = 1, 2, …) is ``base_s * factor**(n-1)`` capped at ``max_s``, scaled by a random
    factor in [1 - jitter, 1]. ``next_delay`` returns None once waiting again would end past
    the budget.
    """

    base_s: float = 0.25
    factor: float = 2.0
    max_s: float = 8.0
    jitter: float = 0.5
    budget_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0  # retries granted so far
    _began: float | None = None

    def next_delay(self) -> float | None:
        now = self.clock()
        if self._began is None:
            self._began = now
        raw = min(self.max_s, self.base_s * self.factor**self.attempts)
        delay = raw * (1.0 - self.jitter * self.rng.random())
        if now + delay - self._began > self.budget_s:
            return None
        self.attempts += 1
        return delay

    def elapsed_s(self) -> float:
        return 0.0 if self._began is None else self.clock() - self._began

    def reset(self) -> None:
        self.attempts, self._began = 0, None


@dataclass(frozen=True, slots=True)
class Retry:
    """One failed attempt that will be tried again: for the user, what and when."""

    attempt: int  # the attempt that failed, from 1
    cause: str
    delay_s: float


Sleep = Callable[[float], Awaitable[None]]


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    backoff: Backoff,
    *,
    renewable_key: bool,
    on_retry: Callable[[Retry], None] = lambda _: None,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """``attempt()`` until it succeeds; a fatal failure, or the budget running out, raises.

    The error raised is the last one, with the hint for its code; when the budget ran out its
    message says how long voicecli kept trying.
    """
    renewed = False
    for number in range(1, 1_000_000):
        try:
            return await attempt()
        except VoiceCliError as exc:
            verdict = classify(exc, renewable_key=renewable_key and not renewed)
            if verdict is Verdict.FATAL:
                raise with_hint(exc) from None
            delay = 0.0 if verdict is Verdict.RENEW else backoff.next_delay()
            renewed = renewed or verdict is Verdict.RENEW
            if delay is None:
                raise _gave_up(exc, number, backoff.elapsed_s()) from None
            if verdict is Verdict.RETRY:  # a renewed key is nothing the user needs to hear of
                on_retry(Retry(number, exc.message, delay))
        await sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _gave_up(error: VoiceCliError, attempts: int, elapsed_s: float) -> VoiceCliError:
    if attempts > 1:
        error.message = f"{error.message} (gave up after {attempts} attempts in {elapsed_s:.0f} s)"
        error.args = (error.message,)
    return with_hint(error)
