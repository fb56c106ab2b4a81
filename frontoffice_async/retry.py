"""What to do when an attempt fails: the retry policy, the pure decision, the retry budget.

No I/O here: `_http.middleware.RetryMiddleware` runs the attempts and asks `decide` (which,
like `RetryDecision`, the client's own modules use; it is not part of the public API).
"""

from __future__ import annotations

import math
from typing import Any, Final

import attrs
from attrs import validators as v

__all__ = ["RetryBudget", "RetryEvent", "RetryPolicy"]

#: Budget numbers, as botocore's standard retry mode.
BUDGET_CAPACITY: Final = 500
RETRY_COST: Final = 5
TIMEOUT_RETRY_COST: Final = 10
NO_RETRY_REFUND: Final = 1


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{attribute.name} must be a number of seconds, got {value!r}")
    if not 0 <= value < math.inf:  # also rejects NaN
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


def _positive_or_none(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{attribute.name} must be a number of seconds or None, got {value!r}")
    if not 0 < value < math.inf:
        raise ValueError(f"{attribute.name} must be > 0 and finite, or None, got {value!r}")


@attrs.frozen
class RetryPolicy:
    """When and how to resend a failed request. Immutable; tweak with `attrs.evolve`.

    Only idempotent methods (`retry_methods`, DELETE and GET) are ever resent. Backoff is
    full-jitter exponential; a `Retry-After` header replaces it (see `decide`).

    Example:
        >>> RetryPolicy(max_attempts=6, deadline=10.0)
        >>> RetryPolicy.none()   # exactly one attempt
    """

    max_attempts: int = attrs.field(default=4, validator=[v.instance_of(int), v.ge(1)])
    """Attempts in total, the first one (and a 401's token refresh) included."""
    base_delay: float = attrs.field(default=0.1, validator=_non_negative)
    """Backoff scale in seconds: the n-th retry waits up to `base_delay * 2**(n-1)`."""
    max_delay: float = attrs.field(default=5.0, validator=_non_negative)
    """Upper bound of one backoff sleep in seconds."""
    retry_statuses: frozenset[int] = attrs.field(
        default=frozenset({429, 500, 502, 503, 504}), converter=frozenset
    )
    """Statuses worth another attempt."""
    retry_connection_errors: bool = True
    """Resend after a connection failure or a per-attempt timeout."""
    max_retry_after: float = attrs.field(default=30.0, validator=_non_negative)
    """A longer `Retry-After` raises `RateLimitError` at once instead of sleeping."""
    deadline: float | None = attrs.field(default=30.0, validator=_positive_or_none)
    """Seconds for the whole call: every wait (rate limiter, token provider, backoff) and
    every attempt; None for no limit."""
    retry_methods: frozenset[str] = attrs.field(
        default=frozenset({"DELETE", "GET"}), converter=frozenset
    )
    """Methods that may be resent (idempotent ones only)."""

    @classmethod
    def none(cls) -> RetryPolicy:
        """A policy that never resends: one attempt (the default 30 s deadline still applies)."""
        return cls(max_attempts=1)


@attrs.frozen
class RetryDecision:
    """What `decide` answered: resend after `delay` seconds at `cost` budget tokens, or stop."""

    retry: bool
    delay: float = 0.0
    cost: int = 0
    reason: str = ""


@attrs.frozen
class RetryEvent:
    """Passed to `on_retry` before each resend. `url` never holds a secret."""

    method: str
    url: str
    attempt: int
    """The attempt that failed (1 for the first)."""
    delay: float
    """Seconds the middleware sleeps before the next attempt."""
    cause: str
    """Why: an HTTP status ("503") or a failure ("timeout", "ServerDisconnectedError")."""
    status: int | None = None


def decide(
    policy: RetryPolicy,
    *,
    method: str,
    attempt: int,
    status: int | None,
    timed_out: bool = False,
    retry_after: float | None = None,
    elapsed: float,
    budget_left: int,
    rand: float,
    sent: bool = True,
) -> RetryDecision:
    """Decide whether attempt number `attempt` (1-based), which just failed, is retried.

    `status` is the response status, or None when the attempt raised (connection failure or,
    with `timed_out`, a per-attempt timeout); `sent` is False when that attempt surely never
    reached the server (no connection could be had). `rand` is a number in [0, 1).

    The delay is `retry_after` when the server sent one (honoured exactly, never shortened),
    else full-jitter exponential backoff::

        delay = rand * min(max_delay, base_delay * 2 ** (attempt - 1))

    No retry when: the method is not idempotent (a POST is resent only when it surely never
    reached the server, or after a 429, which refused it); the status is not in `retry_statuses`;
    attempts are used up; `retry_after` exceeds `max_retry_after`; the sleep would end past
    the deadline; or the budget has fewer than the retry's cost (5 tokens, 10 after a timeout).
    """
    if method not in policy.retry_methods and not (status == 429 or (status is None and not sent)):
        return RetryDecision(False, reason=f"{method} is not retried")
    if status is not None and status not in policy.retry_statuses:
        return RetryDecision(False, reason=f"status {status} is not retried")
    if status is None and not policy.retry_connection_errors:
        return RetryDecision(False, reason="connection errors are not retried")
    if attempt >= policy.max_attempts:
        return RetryDecision(False, reason=f"{policy.max_attempts} attempts used")
    if retry_after is not None:
        if retry_after > policy.max_retry_after:
            return RetryDecision(False, reason=f"Retry-After {retry_after:g}s is too long")
        delay = retry_after
    else:
        delay = rand * min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
    if policy.deadline is not None and elapsed + delay >= policy.deadline:
        return RetryDecision(False, reason="the deadline would pass")
    cost = TIMEOUT_RETRY_COST if timed_out else RETRY_COST
    if budget_left < cost:
        return RetryDecision(False, reason="the retry budget is spent")
    return RetryDecision(True, delay=delay, cost=cost)


class RetryBudget:
    """Client-wide retry tokens, so a server that is down hard gets few retries.

    Starts full at 500 tokens. A retry takes 5 (10 after a timeout); a call that ends in a
    2xx gives back what its retries took, or 1 token when it needed none. (botocore gives
    back only the last retry's cost; giving back all of it keeps a flapping server from
    draining the budget of calls that ended well.) With too few tokens left, failed calls stop
    after their first attempt. Pass one to several clients to share it. No await inside.
    """

    def __init__(self, capacity: int = BUDGET_CAPACITY) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"capacity must be an int >= 0, got {capacity!r}")
        self.capacity: int = capacity
        """Tokens when full."""
        self.available: int = capacity
        """Tokens left now."""

    def acquire(self, cost: int) -> bool:
        """Take `cost` tokens if there are enough; never raises."""
        if cost > self.available:
            return False
        self.available -= cost
        return True

    def release(self, amount: int) -> None:
        """Give tokens back, up to capacity."""
        self.available = min(self.capacity, self.available + amount)

    def __repr__(self) -> str:
        return f"<RetryBudget {self.available}/{self.capacity}>"
