"""The retry middleware: runs one call's attempts as its `RetryPolicy` says.

For each attempt it waits for the token and the rate limiter within the call's deadline,
applies the token, sends, reads the body within the attempt's limit and size cap, and asks
`retry.decide` (a pure function) whether and when to go again. A 401 is answered by one
token refresh, as one more attempt of the same loop. What the loop learned reaches the
caller on the call's `Exchange`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, TypeVar

import aiohttp
from multidict import istr

from . import _answers
from ._gate import Gate, Halt, Halted
from ._ratelimit import RateLimiter, SlotTooLate
from ._timer import AttemptTimers
from .auth import TokenSource
from .errors import (
    APITimeoutError,
    ClientClosedError,
    TokenProviderError,
    _TokenProviderTimeoutError,
)
from .retry import NO_RETRY_REFUND, RetryBudget, RetryDecision, RetryEvent, RetryPolicy, decide

__all__ = ["DEFAULT_MAX_BODY", "Exchange", "RetryMiddleware"]

logger = logging.getLogger("frontoffice_async")

#: Bytes of a response body read at most, counted after decompression.
DEFAULT_MAX_BODY: Final = 8 * 1024 * 1024

T = TypeVar("T")
_Handler = Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]]
_AUTHORIZATION: Final = istr("Authorization")
_PROVIDER: Final = "the token provider"


class Exchange:
    """One call through a `RetryMiddleware`: the middleware of its request, and what the loop
    learned for the caller (requests sent, whether one may have reached the server without
    an answer, the body read, and whether that body was cut at the size cap)."""

    __slots__ = ("_retry", "ambiguous", "attempts", "body", "halt", "truncated")

    def __init__(self, retry: RetryMiddleware, halt: Halt | None = None) -> None:
        self._retry = retry
        self.halt = halt
        self.attempts = 0
        self.ambiguous = False
        self.body = b""
        self.truncated = False

    def __call__(
        self, request: aiohttp.ClientRequest, handler: _Handler
    ) -> Coroutine[Any, Any, aiohttp.ClientResponse]:
        # Not `async def`: aiohttp awaits what a middleware returns, and handing it the loop's
        # own coroutine saves a frame per request.
        return self._retry.run(request, handler, self)


class RetryMiddleware:
    """aiohttp client middleware that enforces a `RetryPolicy` for one client (or view).

    Owns: resends, the per-attempt `timeout`, the policy's deadline over every wait, the token
    of each attempt (and the refresh after a 401), the retry budget and the rate limiter. It
    reads each body inside the attempt's timeout and up to `max_body` bytes, and releases
    every response it discards. Final transport failures leave it as `APIConnectionError`/
    `APITimeoutError`, never as aiohttp errors (aiohttp would otherwise replay the whole chain
    once on a dropped connection).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        tokens: TokenSource,
        timeout: float | None = None,
        budget: RetryBudget | None = None,
        limiter: RateLimiter | None = None,
        gate: Gate | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        on_retry: Callable[[RetryEvent], object] | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self.timeout = timeout
        self.tokens = tokens
        self.budget = budget if budget is not None else RetryBudget()
        self.limiter = limiter
        self.gate = gate if gate is not None else Gate()
        self.max_body = max_body
        self.on_retry = on_retry
        self._timers = AttemptTimers()
        self._sleep = sleep
        self._clock = clock
        self._rand = rand

    def evolve(self, *, policy: RetryPolicy, timeout: float | None) -> RetryMiddleware:
        """The same middleware (budget, limiter, tokens, gate, hooks) with another policy or
        per-attempt timeout: what a client view uses."""
        twin = RetryMiddleware(
            policy,
            tokens=self.tokens,
            timeout=timeout,
            budget=self.budget,
            limiter=self.limiter,
            gate=self.gate,
            max_body=self.max_body,
            on_retry=self.on_retry,
            sleep=self._sleep,
            clock=self._clock,
            rand=self._rand,
        )
        twin._timers = self._timers
        return twin

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: _Handler
    ) -> aiohttp.ClientResponse:
        """Usable as a plain session middleware; the client uses one `Exchange` per call."""
        return await self.run(request, handler, Exchange(self))

    async def run(
        self, request: aiohttp.ClientRequest, handler: _Handler, exchange: Exchange
    ) -> aiohttp.ClientResponse:
        """Run the attempts of one call; `exchange` receives what the caller must know."""
        policy = self.policy
        started = self._clock()
        deadline_at = None if policy.deadline is None else started + policy.deadline
        spent = 0
        refreshed = False
        for attempt in range(1, policy.max_attempts + 1):
            header = await self._prepare(request, exchange, deadline_at)
            try:
                response = await self._attempt(request, handler, exchange, deadline_at)
            except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
                timed_out = isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError)
                decision = self._decide(request, attempt, None, timed_out, None, started)
                if not decision.retry:
                    raise self._final_error(exc, request, exchange, deadline_at) from exc
                cause = "timeout" if timed_out else type(exc).__name__
                await self._pause(request, attempt, decision, cause, None)
                spent += decision.cost
                continue
            status = response.status
            if 200 <= status < 300:
                self.budget.release(spent or NO_RETRY_REFUND)
                return response
            if status == 401:
                if refreshed:
                    self.tokens.refused(header)
                elif self._may_refresh(header, attempt, deadline_at):
                    # One more attempt of this call: same deadline, no budget tokens.
                    response.release()
                    refreshed = True
                    self._announce(request, attempt, 0.0, "401", 401)
                    await self._wait(
                        self.tokens.refresh(stale=header),
                        request,
                        exchange,
                        deadline_at,
                        _PROVIDER,
                    )
                    continue
            if status not in policy.retry_statuses:
                return response
            retry_after = (
                _answers.retry_after_seconds(response.headers) if status in (429, 503) else None
            )
            decision = self._decide(request, attempt, status, False, retry_after, started)
            if not decision.retry:
                return response
            response.release()
            if status >= 500:
                exchange.ambiguous = True
            if status == 429 and retry_after is None and self.limiter is not None:
                self.limiter.slow_down()
            await self._pause(request, attempt, decision, str(status), status)
            spent += decision.cost
        raise AssertionError("unreachable: the last attempt always returns or raises")

    async def _prepare(
        self, request: aiohttp.ClientRequest, exchange: Exchange, deadline_at: float | None
    ) -> str:
        """Everything an attempt waits for before it may leave, within the deadline."""
        tokens = self.tokens
        header = tokens.cached()  # the fast path: no await while a token is fresh
        if header is None:
            header = await self._wait(tokens.header(), request, exchange, deadline_at, _PROVIDER)
        if self.limiter is not None:
            try:
                await self.limiter.acquire(deadline_at)
            except SlotTooLate:
                raise self._late(request, exchange, "the rate limiter's next slot") from None
            header = tokens.cached() or header  # a refresh may have landed meanwhile
        if exchange.halt is not None and exchange.halt.error is not None:
            raise Halted(exchange.attempts)  # the bulk call failed fast meanwhile
        if self.gate.closing:
            raise ClientClosedError(
                "the client was closed before the request could be sent",
                attempts=exchange.attempts,
            )
        if deadline_at is not None and self._clock() >= deadline_at:
            raise self._late(request, exchange, "the next attempt")
        request.headers[_AUTHORIZATION] = header
        return header

    async def _attempt(
        self,
        request: aiohttp.ClientRequest,
        handler: _Handler,
        exchange: Exchange,
        deadline_at: float | None,
    ) -> aiohttp.ClientResponse:
        """Send once and read the body within the attempt's limit; close what fails."""
        limit = self.timeout
        if deadline_at is not None:
            left = deadline_at - self._clock()
            limit = left if limit is None else min(limit, left)
        response: aiohttp.ClientResponse | None = None
        expiry = self._timers.arm(limit)
        gate = self.gate
        gate.enter()
        # aiohttp sets `request.response` once the request is written: an attempt that ends
        # before (no connection free in the pool, connection refused) reached no server, so
        # it is not counted and cannot make a later 400/404 look like our own doing.
        request.response = None
        try:
            response = await handler(request)
            exchange.attempts += 1
            cap = self.max_body
            read = _read_now(response, cap) or await _read_capped(response, cap)
            exchange.body, exchange.truncated = read
        except asyncio.CancelledError:
            self._fail(request, response, exchange)
            if expiry is None or not expiry.caused():
                raise
            raise TimeoutError from None
        except BaseException:
            self._fail(request, response, exchange)
            raise
        finally:
            if expiry is not None:
                expiry.disarm()
            gate.leave()
        return response

    @staticmethod
    def _fail(
        request: aiohttp.ClientRequest,
        response: aiohttp.ClientResponse | None,
        exchange: Exchange,
    ) -> None:
        """An attempt failed: close its response; count it, as ambiguous, if it was sent."""
        if response is not None:
            response.close()  # counted already: the server answered
        elif getattr(request, "response", None) is not None:  # typed as always None
            exchange.attempts += 1
            exchange.ambiguous = True  # it may have reached the server and taken effect

    async def _wait(
        self,
        awaitable: Coroutine[Any, Any, T],
        request: aiohttp.ClientRequest,
        exchange: Exchange,
        deadline_at: float | None,
        what: str,
    ) -> T:
        """Await a wait of the call (the token provider) within the deadline."""
        if deadline_at is None:
            expiry = None
        else:
            expiry = self._timers.arm(max(deadline_at - self._clock(), 0.0))
        try:
            return await awaitable
        except asyncio.CancelledError:
            if expiry is None or not expiry.caused():
                raise
            raise self._late(request, exchange, what) from None
        except TokenProviderError as exc:
            # The provider's failure is shared by every caller of its episode: give this
            # call its own error, with its own attempt count.
            own = TokenProviderError(str(exc), attempts=exchange.attempts)
            raise own from exc.__cause__
        finally:
            if expiry is not None:
                expiry.disarm()

    def _may_refresh(self, header: str, attempt: int, deadline_at: float | None) -> bool:
        if attempt >= self.policy.max_attempts or not self.tokens.should_refresh(header):
            return False
        return deadline_at is None or self._clock() < deadline_at

    def _decide(
        self,
        request: aiohttp.ClientRequest,
        attempt: int,
        status: int | None,
        timed_out: bool,
        retry_after: float | None,
        started: float,
    ) -> RetryDecision:
        if self.gate.closing:
            return RetryDecision(False, reason="the client is closing")
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
        self._announce(request, attempt, decision.delay, cause, status)
        await self._sleep(decision.delay)

    def _announce(
        self,
        request: aiohttp.ClientRequest,
        attempt: int,
        delay: float,
        cause: str,
        status: int | None,
    ) -> None:
        """The DEBUG log line and the `on_retry` event of a resend."""
        url = _safe_url(request)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "retrying %s %s after attempt %d (%s) in %.3fs",
                request.method,
                url,
                attempt,
                cause,
                delay,
            )
        if self.on_retry is not None:
            event = RetryEvent(request.method, url, attempt, delay, cause, status)
            try:
                self.on_retry(event)
            except Exception:
                # A broken progress hook must not abort a cancel in flight.
                logger.exception("on_retry callback failed")

    def _late(
        self, request: aiohttp.ClientRequest, exchange: Exchange, what: str
    ) -> APITimeoutError:
        deadline = self.policy.deadline
        # A provider that does not answer in time will not for the next id either.
        kind = _TokenProviderTimeoutError if what == _PROVIDER else APITimeoutError
        return kind(
            f"deadline of {deadline:g}s exceeded waiting for {what}",
            method=request.method,
            url=_safe_url(request),
            attempts=exchange.attempts,
        )

    def _final_error(
        self,
        exc: BaseException,
        request: aiohttp.ClientRequest,
        exchange: Exchange,
        deadline_at: float | None,
    ) -> Exception:
        error = _answers.connection_error(
            exc, method=request.method, url=_safe_url(request), attempts=exchange.attempts
        )
        if (
            isinstance(error, APITimeoutError)
            and deadline_at is not None
            and self._clock() >= deadline_at
        ):
            return APITimeoutError(
                f"deadline of {self.policy.deadline:g}s exceeded",
                method=error.method,
                url=error.url,
                attempts=error.attempts,
            )
        return error


def _read_now(response: aiohttp.ClientResponse, cap: int) -> tuple[bytes, bool] | None:
    """The body when all of it has arrived (a small answer comes with its headers), taken
    without a coroutine; None when it is still coming or is over `cap`."""
    content = response.content
    if content.is_eof() and content.total_bytes <= cap:
        return content.read_nowait(-1), False
    return None


async def _read_capped(response: aiohttp.ClientResponse, cap: int) -> tuple[bytes, bool]:
    """The whole body, or its first `cap` bytes and True (the connection is then closed)."""
    content = response.content
    body = await content.read(cap + 1)  # usually all of it: it came with the headers
    if content.at_eof() or not body:
        return body, False
    chunks = [body]
    size = len(body)
    while size <= cap:
        chunk = await content.read(cap + 1 - size)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
    # Over the cap (counted after decompression, so a gzip bomb stops here): stop reading.
    response.close()
    return b"".join(chunks)[:cap], True


def _safe_url(request: aiohttp.ClientRequest) -> str:
    # Query strings can carry tokens (the websocket hub does); paths and hosts cannot.
    return str(request.url.with_query(None).with_fragment(None))
