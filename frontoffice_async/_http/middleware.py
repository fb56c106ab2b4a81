"""The retry middleware: runs one call's attempts as its `RetryPolicy` says.

For each attempt it waits for the token and the rate limiter within the call's deadline,
applies the token, sends (`attempt.send_once`), and asks `retry.decide` (a pure function)
whether and when to go again. A 401 is answered by one token refresh, as one more attempt of
the same loop. What the loop learned reaches the caller on the call's `Exchange`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, TypeVar

import aiohttp
import attrs
from multidict import istr

from ..errors import (
    APITimeoutError,
    ClientClosedError,
    TokenProviderError,
    TokenProviderTimeoutError,
)
from ..retry import NO_RETRY_REFUND, RetryBudget, RetryDecision, RetryEvent, RetryPolicy, decide
from . import answers
from .attempt import Exchange, Handler, send_once
from .gate import Gate, Halted
from .ratelimit import RateLimiter, SlotTooLate
from .timers import AttemptTimers, DeadlinePassed, within
from .tokens import Credential, TokenSource

__all__ = ["DEFAULT_MAX_BODY", "RetryMiddleware", "Shared", "announce"]

logger = logging.getLogger("frontoffice_async")

#: Bytes of a response body read at most, counted after decompression.
DEFAULT_MAX_BODY: Final = 8 * 1024 * 1024

T = TypeVar("T")
_AUTHORIZATION: Final = istr("Authorization")
_PROVIDER: Final = "the token provider"
_SLOT: Final = "a free request slot"


@attrs.frozen(eq=False)
class Shared:
    """What the middlewares of one client and all its views share: the token, the retry
    budget, the rate limiter, the gate that `close()` shuts, the attempt timers, the body
    cap, the `on_retry` hook, and the injected sleep, clock and randomness."""

    tokens: TokenSource
    budget: RetryBudget = attrs.field(factory=RetryBudget)
    limiter: RateLimiter | None = None
    gate: Gate = attrs.field(factory=Gate)
    timers: AttemptTimers = attrs.field(factory=AttemptTimers)
    max_body: int = DEFAULT_MAX_BODY
    on_retry: Callable[[RetryEvent], object] | None = None
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    rand: Callable[[], float] = random.random


@attrs.frozen(eq=False)
class RetryMiddleware:
    """aiohttp client middleware that enforces a `RetryPolicy` for one client (or view).

    Owns: resends, the per-attempt `timeout`, the policy's deadline over every wait, the token
    of each attempt (and the refresh after a 401), the retry budget and the rate limiter. It
    releases every response it discards. Final transport failures leave it as
    `APIConnectionError`/`APITimeoutError`, never as aiohttp errors (aiohttp would otherwise
    replay the whole chain once on a dropped connection). A view of a client is
    `attrs.evolve(middleware, policy=..., timeout=...)`.
    """

    policy: RetryPolicy
    timeout: float | None
    shared: Shared

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: Handler
    ) -> aiohttp.ClientResponse:
        """Usable as a plain session middleware; the client uses one `Exchange` per call."""
        return await self.run(request, handler, Exchange(self.run))

    async def run(
        self, request: aiohttp.ClientRequest, handler: Handler, exchange: Exchange
    ) -> aiohttp.ClientResponse:
        """Run the attempts of one call; `exchange` receives what the caller must know."""
        policy, shared = self.policy, self.shared
        started = shared.clock()
        deadline_at = None if policy.deadline is None else started + policy.deadline
        spent = 0
        refreshed = False
        for attempt in range(1, policy.max_attempts + 1):
            # A `Credential`, not the header's text: this frame's locals must not show the
            # token in a traceback that captures them (Sentry does by default).
            credential = await (
                self._prepare(request, exchange, deadline_at)
                if exchange.slot is None
                else self._prepare_in_slot(request, exchange, deadline_at)
            )
            limit = self.timeout  # the attempt's: the per-attempt timeout, cut at the deadline
            if deadline_at is not None:
                left = deadline_at - shared.clock()
                limit = left if limit is None else min(limit, left)
            sent_before = exchange.attempts
            observe = exchange.observe
            sent_at = 0.0 if observe is None else shared.clock()
            try:
                response = await send_once(
                    request, handler, exchange, limit, shared.max_body, shared.gate, shared.timers
                )
            except asyncio.CancelledError:
                if observe is not None and exchange.attempts > sent_before:
                    # It reached the platform before the call was cancelled: record it.
                    observe(exchange.attempts, None, "cancelled", shared.clock() - sent_at, b"")
                raise
            except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
                sent = exchange.attempts > sent_before  # it reached the wire
                spent += await self._after_failure(
                    exc, request, exchange, attempt, started, deadline_at, sent, sent_at
                )
                continue
            status = response.status
            if observe is not None:
                observe(exchange.attempts, status, None, shared.clock() - sent_at, exchange.body)
            if 200 <= status < 300:
                shared.budget.release(spent or NO_RETRY_REFUND)
                return response
            if status == 401:
                if refreshed:
                    shared.tokens.refused(credential)
                elif self._may_refresh(credential, attempt, deadline_at):
                    # One more attempt of this call: same deadline, no budget tokens.
                    response.release()
                    refreshed = True
                    await self._refresh(request, exchange, credential, attempt, deadline_at)
                    continue
            if status not in policy.retry_statuses:
                return response
            retry_after = (
                answers.retry_after_seconds(response.headers) if status in (429, 503) else None
            )
            decision = self._decide(request, attempt, status, False, retry_after, started)
            if not decision.retry:
                return response
            response.release()
            if status >= 500:
                exchange.ambiguous = True
            if status == 429 and retry_after is None and shared.limiter is not None:
                shared.limiter.slow_down()
            await self._pause(request, attempt, decision, str(status), status)
            spent += decision.cost
        raise AssertionError("unreachable: the last attempt always returns or raises")

    async def _prepare(
        self, request: aiohttp.ClientRequest, exchange: Exchange, deadline_at: float | None
    ) -> Credential:
        """Wait for the token and a rate-limiter slot, then set `Authorization`.

        Returns the credential set; raises `Halted` (the bulk call stopped meanwhile),
        `ClientClosedError` or `APITimeoutError` instead when the attempt may not leave.
        """
        shared = self.shared
        tokens = shared.tokens
        credential = tokens.cached_credential()  # the fast path: no await while it is fresh
        if credential is None:
            credential = await self._wait(
                tokens.credential(), request, exchange, deadline_at, _PROVIDER
            )
        if shared.limiter is not None:
            try:
                await shared.limiter.acquire(deadline_at)
            except SlotTooLate:
                raise self._deadline_error(
                    request, exchange, "the rate limiter's next slot"
                ) from None
            credential = tokens.cached_credential() or credential  # a refresh may have landed
        if exchange.halt is not None and exchange.halt.error is not None:
            raise Halted(exchange.attempts)  # the bulk call failed fast meanwhile
        if shared.gate.closing:
            raise ClientClosedError(
                "the client was closed before the request could be sent",
                attempts=exchange.attempts,
            )
        if deadline_at is not None and shared.clock() >= deadline_at:
            raise self._deadline_error(request, exchange, "the next attempt")
        request.headers[_AUTHORIZATION] = credential.value  # the only place the text goes
        return credential

    async def _prepare_in_slot(
        self, request: aiohttp.ClientRequest, exchange: Exchange, deadline_at: float | None
    ) -> Credential:
        """`_prepare` once the exchange's slot (flatten's gate over its accounts) is taken,
        within the deadline but not under the attempt's timeout (waiting for a slot is not the
        platform being slow): every check of `_prepare` then holds when the attempt leaves.
        `send_once` gives the slot back once the answer is read."""
        slot = exchange.slot
        assert slot is not None
        await self._wait(slot.acquire(), request, exchange, deadline_at, _SLOT)
        try:
            return await self._prepare(request, exchange, deadline_at)
        except BaseException:
            slot.release()  # the attempt does not leave
            raise

    async def _wait(
        self,
        awaitable: Coroutine[Any, Any, T],
        request: aiohttp.ClientRequest,
        exchange: Exchange,
        deadline_at: float | None,
        what: str,
    ) -> T:
        """Await `awaitable` (the token provider, a request slot) within the deadline.

        Raises `APITimeoutError` when the deadline passes first, and this call's own
        `TokenProviderError` when the provider failed.
        """
        shared = self.shared
        try:
            return await within(awaitable, deadline_at, timers=shared.timers, clock=shared.clock)
        except DeadlinePassed:
            raise self._deadline_error(request, exchange, what) from None
        except TokenProviderError as exc:
            # The provider's failure is shared by every caller of its episode: give this
            # call its own error, with its own attempt count.
            own = TokenProviderError(str(exc), attempts=exchange.attempts)
            raise own from exc.__cause__

    async def _after_failure(
        self,
        exc: BaseException,
        request: aiohttp.ClientRequest,
        exchange: Exchange,
        attempt: int,
        started: float,
        deadline_at: float | None,
        sent: bool,
        sent_at: float,
    ) -> int:
        """After an attempt failed on the network: tell the observer, then pause for the next
        attempt (returns the budget tokens it took) or raise the call's final error."""
        timed_out = isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError)
        cause = "timeout" if timed_out else type(exc).__name__
        observe = exchange.observe
        if observe is not None and sent:
            observe(exchange.attempts, None, cause, self.shared.clock() - sent_at, b"")
        decision = self._decide(request, attempt, None, timed_out, None, started, sent)
        if not decision.retry:
            raise self._final_error(exc, request, exchange, deadline_at) from exc
        await self._pause(request, attempt, decision, cause, None)
        return decision.cost

    async def _refresh(
        self,
        request: aiohttp.ClientRequest,
        exchange: Exchange,
        rejected: Credential,
        attempt: int,
        deadline_at: float | None,
    ) -> None:
        """Announce the resend a 401 calls for, and wait for the refreshed token."""
        self._announce(request, attempt, 0.0, "401", 401)
        refresh = self.shared.tokens.refresh(stale=rejected)
        await self._wait(refresh, request, exchange, deadline_at, _PROVIDER)

    def _may_refresh(
        self, credential: Credential, attempt: int, deadline_at: float | None
    ) -> bool:
        if attempt >= self.policy.max_attempts or not self.shared.tokens.should_refresh(
            credential
        ):
            return False
        return deadline_at is None or self.shared.clock() < deadline_at

    def _decide(
        self,
        request: aiohttp.ClientRequest,
        attempt: int,
        status: int | None,
        timed_out: bool,
        retry_after: float | None,
        started: float,
        sent: bool = True,
    ) -> RetryDecision:
        shared = self.shared
        if shared.gate.closing:
            return RetryDecision(False, reason="the client is closing")
        return decide(
            self.policy,
            method=request.method,
            attempt=attempt,
            status=status,
            timed_out=timed_out,
            retry_after=retry_after,
            elapsed=shared.clock() - started,
            budget_left=shared.budget.available,
            rand=shared.rand(),
            sent=sent,
        )

    async def _pause(
        self,
        request: aiohttp.ClientRequest,
        attempt: int,
        decision: RetryDecision,
        cause: str,
        status: int | None,
    ) -> None:
        """Take the retry's budget tokens, announce it, and sleep its delay."""
        self.shared.budget.acquire(decision.cost)
        self._announce(request, attempt, decision.delay, cause, status)
        await self.shared.sleep(decision.delay)

    def _announce(
        self,
        request: aiohttp.ClientRequest,
        attempt: int,
        delay: float,
        cause: str,
        status: int | None,
    ) -> None:
        url = answers.safe_url(request.url)
        event = RetryEvent(request.method, url, attempt, delay, cause, status)
        announce(event, self.shared.on_retry, "retrying %s %s after attempt %d (%s) in %.3fs")

    def _deadline_error(
        self, request: aiohttp.ClientRequest, exchange: Exchange, what: str
    ) -> APITimeoutError:
        # A provider that does not answer in time will not for the next id either.
        kind = TokenProviderTimeoutError if what == _PROVIDER else APITimeoutError
        return answers.deadline_error(
            self.policy.deadline,
            what,
            method=request.method,
            url=answers.safe_url(request.url),
            attempts=exchange.attempts,
            kind=kind,
        )

    def _final_error(
        self,
        exc: BaseException,
        request: aiohttp.ClientRequest,
        exchange: Exchange,
        deadline_at: float | None,
    ) -> Exception:
        past = deadline_at is not None and self.shared.clock() >= deadline_at
        return answers.final_connection_error(
            exc,
            method=request.method,
            url=answers.safe_url(request.url),
            attempts=exchange.attempts,
            deadline=self.policy.deadline if past else None,
            secrets=self.shared.tokens.secrets,
        )


def announce(
    event: RetryEvent, on_retry: Callable[[RetryEvent], object] | None, line: str
) -> None:
    """Log a resend (or a hub reconnection) at DEBUG with `line` and call `on_retry`.

    `line` formats the method, URL, attempt, cause and delay, in that order.
    """
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(line, event.method, event.url, event.attempt, event.cause, event.delay)
    if on_retry is not None:
        try:
            on_retry(event)
        except Exception:
            # A broken progress hook must not abort a cancel in flight.
            logger.exception("on_retry callback failed")
