"""Failure classification, backoff and the retry loop (voicecli/realtime/failures.py)."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import pytest

from voicecli.errors import (
    AudioError,
    AuthError,
    ConfigError,
    InvalidEventError,
    NetworkError,
    OperationTimeout,
    ServiceError,
    VoiceCliError,
)
from voicecli.realtime.failures import (
    FATAL_CODES,
    Backoff,
    Retry,
    Verdict,
    classify,
    is_fatal_code,
    retrying,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (NetworkError("cannot reach api.openai.com"), Verdict.RETRY),
        (OperationTimeout("slow"), Verdict.RETRY),
        (ServiceError("boom", status=500), Verdict.RETRY),
        (ServiceError("overloaded", status=503), Verdict.RETRY),
        (ServiceError("slow down", status=429, code="rate_limit_exceeded"), Verdict.RETRY),
        (ServiceError("quota", status=429, code="insufficient_quota"), Verdict.FATAL),
        (ServiceError("billing", status=429, code="billing_hard_limit_reached"), Verdict.FATAL),
        (ServiceError("no model", status=404, code="model_not_found"), Verdict.FATAL),
        (ServiceError("gone", status=401, code="account_deactivated"), Verdict.FATAL),
        (ServiceError("bad offer", status=400, code="invalid_offer"), Verdict.FATAL),
        (ServiceError("refused the session"), Verdict.FATAL),  # no status: the service said no
        (InvalidEventError("bad tool schema"), Verdict.FATAL),
        (ConfigError("broken file"), Verdict.FATAL),
        (AudioError("no mic"), Verdict.FATAL),
    ],
)
def test_classification(error: VoiceCliError, verdict: Verdict) -> None:
    assert classify(error, renewable_key=True) is verdict


def test_a_401_is_fatal_for_a_standard_key_and_a_renewal_for_an_ephemeral_one() -> None:
    refused = AuthError("refused the key (401)")
    assert classify(refused, renewable_key=False) is Verdict.FATAL
    assert classify(refused, renewable_key=True) is Verdict.RENEW


def test_the_fatal_codes_are_the_ones_the_issue_names() -> None:
    assert {
        "invalid_api_key",
        "insufficient_quota",
        "account_deactivated",
        "billing_hard_limit_reached",
        "model_not_found",
    } == FATAL_CODES
    assert is_fatal_code("insufficient_quota")
    assert not is_fatal_code("session_expired") and not is_fatal_code(None)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    clock = FakeClock()
    backoff = Backoff(base_s=0.5, max_s=4.0, jitter=0.5, budget_s=1000, clock=clock)
    delays = [backoff.next_delay() for _ in range(6)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert delay is not None and ceiling * 0.5 <= delay <= ceiling


def test_jitter_spreads_clients_that_failed_together() -> None:
    firsts = {
        Backoff(base_s=1.0, jitter=0.5, rng=random.Random(seed)).next_delay() for seed in range(20)
    }
    assert len(firsts) == 20


def test_backoff_stops_at_the_budget() -> None:
    clock = FakeClock()
    backoff = Backoff(base_s=1.0, jitter=0.0, budget_s=5.0, clock=clock)
    granted = []
    while (delay := backoff.next_delay()) is not None:
        granted.append(delay)
        clock.now += delay
    assert granted == [1.0, 2.0]  # a 4 s wait would end 7 s after the first failure
    backoff.reset()
    assert backoff.next_delay() == 1.0


def attempts(*outcomes: VoiceCliError | str) -> Callable[[], Awaitable[str]]:
    """An attempt that raises or returns each outcome in turn."""
    queue = list(outcomes)

    async def attempt() -> str:
        outcome = queue.pop(0)
        if isinstance(outcome, VoiceCliError):
            raise outcome
        return outcome

    return attempt


async def test_retrying_waits_between_attempts_and_says_so() -> None:
    clock = FakeClock()
    retries: list[Retry] = []
    result = await retrying(
        attempts(ServiceError("500", status=500), NetworkError("down"), "connected"),
        Backoff(base_s=0.5, jitter=0.0, clock=clock),
        renewable_key=False,
        on_retry=retries.append,
        sleep=clock.sleep,
    )
    assert result == "connected"
    assert retries == [Retry(1, "500", 0.5), Retry(2, "down", 1.0)]
    assert clock.now == 101.5


async def test_a_fatal_error_is_raised_at_once_with_a_hint() -> None:
    clock = FakeClock()
    retries: list[Retry] = []
    with pytest.raises(ServiceError) as failed:
        await retrying(
            attempts(ServiceError("quota", status=429, code="insufficient_quota"), "never"),
            Backoff(clock=clock),
            renewable_key=True,
            on_retry=retries.append,
            sleep=clock.sleep,
        )
    assert retries == [] and clock.now == 100.0
    assert failed.value.hint is not None and "billing" in failed.value.hint


async def test_a_refused_ephemeral_key_is_renewed_once_without_telling_the_user() -> None:
    clock = FakeClock()
    retries: list[Retry] = []
    result = await retrying(
        attempts(AuthError("expired"), "connected"),
        Backoff(clock=clock),
        renewable_key=True,
        on_retry=retries.append,
        sleep=clock.sleep,
    )
    assert result == "connected" and retries == []
    with pytest.raises(AuthError):
        await retrying(
            attempts(AuthError("expired"), AuthError("still refused"), "never"),
            Backoff(clock=clock),
            renewable_key=True,
            sleep=clock.sleep,
        )


async def test_giving_up_says_how_long_voicecli_tried() -> None:
    clock = FakeClock()
    with pytest.raises(NetworkError) as failed:
        await retrying(
            attempts(*[NetworkError("cannot reach the host")] * 10),
            Backoff(base_s=1.0, jitter=0.0, budget_s=3.5, clock=clock),
            renewable_key=False,
            sleep=clock.sleep,
        )
    assert failed.value.message == "cannot reach the host (gave up after 3 attempts in 3 s)"
    assert failed.value.exit_code == 4


async def test_a_zero_budget_tries_once_and_keeps_the_message() -> None:
    with pytest.raises(NetworkError) as failed:
        await retrying(
            attempts(NetworkError("stalled at signaling"), "never"),
            Backoff(budget_s=0.0),
            renewable_key=False,
        )
    assert failed.value.message == "stalled at signaling"
