"""The pure retry decision, the policy's validation and the retry budget: no I/O."""

from __future__ import annotations

import attrs
import pytest

from frontoffice_async import RetryBudget, RetryPolicy
from frontoffice_async.retry import RetryDecision, decide

POLICY = RetryPolicy(base_delay=0.1, max_delay=5.0, deadline=30.0)


def ask(
    policy: RetryPolicy = POLICY,
    *,
    method: str = "DELETE",
    attempt: int = 1,
    status: int | None = 503,
    timed_out: bool = False,
    retry_after: float | None = None,
    elapsed: float = 0.0,
    budget_left: int = 500,
    rand: float = 0.5,
) -> RetryDecision:
    return decide(
        policy,
        method=method,
        attempt=attempt,
        status=status,
        timed_out=timed_out,
        retry_after=retry_after,
        elapsed=elapsed,
        budget_left=budget_left,
        rand=rand,
    )


@pytest.mark.parametrize(
    ("attempt", "rand", "delay"),
    [
        (1, 0.0, 0.0),
        (1, 0.5, 0.05),
        (1, 0.999, 0.0999),
        (2, 0.5, 0.1),
        (3, 0.5, 0.2),
        (3, 1.0, 0.4),  # the bound itself: rand * base * 2**(n-1)
    ],
)
def test_full_jitter_backoff(attempt: int, rand: float, delay: float) -> None:
    policy = attrs.evolve(POLICY, max_attempts=10)
    decision = ask(policy, attempt=attempt, rand=rand)
    assert decision.retry
    assert decision.delay == pytest.approx(delay)


def test_backoff_is_capped_by_max_delay() -> None:
    policy = attrs.evolve(POLICY, max_attempts=20, max_delay=1.5)
    assert ask(policy, attempt=15, rand=1.0).delay == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("kwargs", "retry", "reason"),
    [
        ({"status": 503}, True, ""),
        ({"status": 429}, True, ""),
        ({"status": 500}, True, ""),
        ({"status": 502}, True, ""),
        ({"status": 504}, True, ""),
        ({"status": 501}, False, "status 501 is not retried"),
        ({"status": 404}, False, "status 404 is not retried"),
        ({"status": 200}, False, "status 200 is not retried"),
        ({"status": None}, True, ""),  # connection error
        ({"status": None, "timed_out": True}, True, ""),
        ({"method": "GET"}, True, ""),
        ({"method": "POST"}, False, "POST is not retried"),
        ({"method": "POST", "status": None}, False, "POST is not retried"),
        ({"attempt": 3}, True, ""),
        ({"attempt": 4}, False, "4 attempts used"),
        ({"budget_left": 5}, True, ""),
        ({"budget_left": 4}, False, "the retry budget is spent"),
        ({"budget_left": 9, "status": None, "timed_out": True}, False, "budget"),
        ({"elapsed": 29.0, "rand": 0.0}, True, ""),
        ({"elapsed": 30.0, "rand": 0.0}, False, "the deadline would pass"),
    ],
)
def test_decision_table(kwargs: dict[str, object], retry: bool, reason: str) -> None:
    decision = ask(**kwargs)  # type: ignore[arg-type]
    assert decision.retry is retry
    assert reason in decision.reason


def test_cost_is_higher_after_a_timeout() -> None:
    assert ask(status=None).cost == 5
    assert ask(status=None, timed_out=True).cost == 10


@pytest.mark.parametrize(
    ("retry_after", "elapsed", "retry", "delay"),
    [
        (0.0, 0.0, True, 0.0),
        (2.5, 0.0, True, 2.5),  # honoured exactly, not jittered
        (30.0, 0.0, False, 0.0),  # == max_retry_after but crosses the 30 s deadline
        (30.5, 0.0, False, 0.0),  # longer than max_retry_after: raise at once
        (10.0, 25.0, False, 0.0),  # within max_retry_after but past the deadline
    ],
)
def test_retry_after(retry_after: float, elapsed: float, retry: bool, delay: float) -> None:
    decision = ask(status=429, retry_after=retry_after, elapsed=elapsed, rand=0.9)
    assert decision.retry is retry
    if retry:
        assert decision.delay == delay


def test_retry_after_longer_than_max_says_why() -> None:
    decision = ask(status=429, retry_after=31.0)
    assert "too long" in decision.reason


def test_no_deadline() -> None:
    policy = attrs.evolve(POLICY, deadline=None)
    assert ask(policy, elapsed=10_000.0).retry


def test_connection_errors_can_be_excluded() -> None:
    policy = attrs.evolve(POLICY, retry_connection_errors=False)
    assert not ask(policy, status=None).retry
    assert ask(policy, status=503).retry


def test_none_policy_never_retries() -> None:
    assert RetryPolicy.none().max_attempts == 1
    assert not ask(RetryPolicy.none(), status=503).retry


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_attempts", 0),
        ("max_attempts", 1.5),
        ("base_delay", -1.0),
        ("max_delay", float("nan")),
        ("deadline", 0.0),
        ("max_retry_after", -0.1),
    ],
)
def test_policy_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises((ValueError, TypeError), match=field):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


def test_policy_is_frozen_and_converts_sets() -> None:
    policy = RetryPolicy(retry_statuses={503})  # type: ignore[arg-type]
    assert policy.retry_statuses == frozenset({503})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.max_attempts = 3  # type: ignore[misc]


def test_budget_acquire_and_release() -> None:
    budget = RetryBudget(capacity=12)
    assert budget.acquire(5)
    assert budget.acquire(5)
    assert not budget.acquire(5)  # 2 left: refused, nothing taken
    assert budget.available == 2
    budget.release(100)
    assert budget.available == 12  # capped
    assert repr(budget) == "<RetryBudget 12/12>"
