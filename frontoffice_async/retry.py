"""Retry policy, the pure retry decision, the client-wide retry budget and the middleware.

The middleware owns every resend, every per-attempt timeout and the call's deadline; the
decision about whether and when to resend is `decide`, a pure function.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiohttp
import attrs
from attrs import validators as v

from ._ratelimit import RateLimiter
from ._timer import AttemptTimers
from .errors import APITimeoutError, make_connection_error, parse_retry_after

__all__ = [
    "RetryBudget",
    "RetryDecision",
    "RetryEvent",
    "RetryMiddleware",
    "RetryPolicy",
    "decide",
]

logger = logging.getLogger("frontoffice_async")

#: Budget numbers, as botocore's standard retry mode.
BUDGET_CAPACITY: Final = 500
RETRY_COST: Final = 5
TIMEOUT_RETRY_COST: Final = 10
NO_RETRY_REFUND: Final = 1

_Handler = Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]]


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _positive_or_none(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be > 0 or None, got {value!r}")


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
    """Attempts in total, the first one included."""
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
    """Seconds for the whole call, sleeps included; None for no limit."""
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
) -> RetryDecision:
    """Decide whether attempt number `attempt` (1-based), which just failed, is retried.

    `status` is the response status, or None when the attempt raised (connection failure or,
    with `timed_out`, a per-attempt timeout). `rand` is a number in [0, 1).

    The delay is `retry_after` when the server sent one (honoured exactly, never shortened),
    else full-jitter exponential backoff::

        delay = rand * min(max_delay, base_delay * 2 ** (attempt - 1))

    No retry when: the method is not idempotent; the status is not in `retry_statuses`;
    attempts are used up; `retry_after` exceeds `max_retry_after`; the sleep would end past
    the deadline; or the budget has fewer than the retry's cost (5 tokens, 10 after a timeout).
    """
    if method not in policy.retry_methods:
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

    Starts full at 500 tokens. A retry takes 5 (10 after a timeout); a call that succeeds
    gives back what its retries took, or 1 token when it needed none. With too few tokens
    left, failed calls stop after their first attempt. Not thread-safe; no await inside.
    """

    def __init__(self, capacity: int = BUDGET_CAPACITY) -> None:
        self.capacity = capacity
        self.available = capacity

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


class _CallState:
    """What one client call learns from the middleware: attempts made, whether an earlier
    attempt may have reached the server (so a later 404 may mean "already done"), and the
    body of the answer it returned (read within the attempt's time limit)."""

    __slots__ = ("ambiguous", "attempts", "body")

    def __init__(self) -> None:
        self.attempts = 0
        self.ambiguous = False
        self.body: bytes | None = None


# The client sets this around each call; a bare session using the middleware has none.
_call_state: contextvars.ContextVar[_CallState | None] = contextvars.ContextVar(
    "frontoffice_async_call_state", default=None
)


class RetryMiddleware:
    """aiohttp client middleware that enforces a `RetryPolicy`.

    Owns: resends, the per-attempt `timeout`, the policy's deadline, the retry budget and the
    rate limiter. It reads each body inside the attempt's timeout, so a body that never ends
    is a timeout too, and it releases every response it discards. Final transport failures
    leave it as `APIConnectionError`/`APITimeoutError`, never as aiohttp errors (aiohttp would
    otherwise replay the whole chain once on a dropped connection).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        timeout: float | None = None,
        budget: RetryBudget | None = None,
        limiter: RateLimiter | None = None,
        on_retry: Callable[[RetryEvent], object] | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self.timeout = timeout
        self.budget = budget if budget is not None else RetryBudget()
        self.limiter = limiter
        self.on_retry = on_retry
        self._timers = AttemptTimers()
        self._sleep = sleep
        self._clock = clock
        self._rand = rand

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: _Handler
    ) -> aiohttp.ClientResponse:
        policy = self.policy
        state = _call_state.get() or _CallState()
        clock = self._clock
        started = clock()
        deadline = policy.deadline
        spent = 0
        for attempt in range(1, policy.max_attempts + 1):
            if self.limiter is not None:
                await self.limiter.acquire()
            limit = self.timeout
            if deadline is not None:
                left = deadline - (clock() - started)
                limit = left if limit is None else min(limit, left)
            state.attempts += 1
            try:
                response = await self._attempt(request, handler, limit, state)
            except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
                timed_out = isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError)
                decision = self._decide(request, attempt, None, timed_out, None, started)
                if not decision.retry:
                    raise self._final_error(exc, request, state, started) from exc
                state.ambiguous = True
                cause = "timeout" if timed_out else type(exc).__name__
                await self._pause(request, attempt, decision, cause, None)
                spent += decision.cost
                continue
            status = response.status
            if status not in policy.retry_statuses:
                # The server answered for real: refund the budget, as botocore does.
                self.budget.release(spent or NO_RETRY_REFUND)
                return response
            retry_after = parse_retry_after(response.headers) if status in (429, 503) else None
            decision = self._decide(request, attempt, status, False, retry_after, started)
            if not decision.retry:
                return response
            response.release()
            if status >= 500:
                state.ambiguous = True
            if status == 429 and retry_after is None and self.limiter is not None:
                self.limiter.slow_down()
            await self._pause(request, attempt, decision, str(status), status)
            spent += decision.cost
        raise AssertionError("unreachable: the last attempt always returns or raises")

    async def _attempt(
        self,
        request: aiohttp.ClientRequest,
        handler: _Handler,
        limit: float | None,
        state: _CallState,
    ) -> aiohttp.ClientResponse:
        """Send once and read the whole body within `limit` seconds; close what fails."""
        response: aiohttp.ClientResponse | None = None
        expiry = self._timers.arm(limit)
        try:
            response = await handler(request)
            body = await response.read()
        except asyncio.CancelledError:
            if response is not None:
                response.close()
            if expiry is None or not expiry.caused():
                raise
            raise TimeoutError from None
        except BaseException:
            if response is not None:
                response.close()
            raise
        finally:
            if expiry is not None:
                expiry.disarm()
        state.body = body
        return response

    def _decide(
        self,
        request: aiohttp.ClientRequest,
        attempt: int,
        status: int | None,
        timed_out: bool,
        retry_after: float | None,
        started: float,
    ) -> RetryDecision:
        return decide(
            self.policy,
            method=request.method,
            attempt=attempt,
            status=status,
            timed_out=timed_out,
            retry_after=retry_after,
            elapsed=self._clock() - started,
            budget_left=self.budget.available,
            rand=self._rand(),
        )

    async def _pause(
        self,
        request: aiohttp.ClientRequest,
        attempt: int,
        decision: RetryDecision,
        cause: str,
        status: int | None,
    ) -> None:
        self.budget.acquire(decision.cost)
        url = _safe_url(request)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "retrying %s %s after attempt %d (%s) in %.3fs",
                request.method,
                url,
                attempt,
                cause,
                decision.delay,
            )
        if self.on_retry is not None:
            event = RetryEvent(request.method, url, attempt, decision.delay, cause, status)
            try:
                self.on_retry(event)
            except Exception:
                # A broken progress hook must not abort a cancel in flight.
                logger.exception("on_retry callback failed")
        await self._sleep(decision.delay)

    def _final_error(
        self,
        exc: BaseException,
        request: aiohttp.ClientRequest,
        state: _CallState,
        started: float,
    ) -> Exception:
        deadline = self.policy.deadline
        error = make_connection_error(
            exc, method=request.method, url=_safe_url(request), attempts=state.attempts
        )
        if (
            isinstance(error, APITimeoutError)
            and deadline is not None
            and self._clock() - started >= deadline
        ):
            error.args = (f"deadline of {deadline:g}s exceeded",)
        return error


def _safe_url(request: aiohttp.ClientRequest) -> str:
    # Query strings can carry tokens (the websocket hub does); paths and hosts cannot.
    return str(request.url.with_query(None).with_fragment(None))
