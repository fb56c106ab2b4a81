"""What a client and all its views share, built once from the constructor's arguments.

The session (and its gate), the token, the retry budget and the rate limiter (inside the
retry middleware), the OpenOrders hub, and the URLs the endpoints use.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

import aiohttp
from yarl import URL

from . import _answers, _converter, streams
from ._checks import check_account_id, check_headers, normalise_base_url, order_path_segment
from ._gate import Halt
from ._middleware import RetryMiddleware
from ._pipeline import Pipeline
from ._ratelimit import RateLimiter
from ._session import USER_AGENT, SessionHolder
from .auth import OfflineTokenAuth, TokenProvider, TokenSource
from .bulk import Canceller
from .errors import ResponseValidationError
from .retry import RetryBudget, RetryEvent, RetryPolicy

__all__ = ["Core", "Settings", "check_concurrency", "check_timeout"]

T = TypeVar("T")
_API: Final = "/frontoffice/api"
#: What the platform's own example sends on `DELETE /v3/stop-orders/{id}` (see the docs).
_STOP_ORDER_HEADERS: Final = {"Content-Type": "application/json; x-api-version=4.0"}
_HUB_PATH: Final = "frontoffice/ws/v4/account"


class Core:
    """The parts of a `FrontOfficeClient` its views share."""

    __slots__ = (
        "accounts_url",
        "base",
        "holder",
        "hub",
        "orders_prefix",
        "pipeline",
        "runners",
        "stop_orders_prefix",
        "tokens",
    )

    def __init__(
        self,
        base_url: str,
        *,
        token: str | TokenProvider,
        retry: RetryPolicy | None,
        timeout: float | aiohttp.ClientTimeout | None,
        concurrency: int,
        rate_limit: float | None,
        session: aiohttp.ClientSession | None,
        trace_configs: Iterable[aiohttp.TraceConfig] | None,
        retry_budget: RetryBudget | None,
        max_body_size: int,
        on_retry: Callable[[RetryEvent], object] | None,
        sleep: Callable[[float], Awaitable[object]],
        clock: Callable[[], float],
        rand: Callable[[], float],
    ) -> None:
        base = self.base = normalise_base_url(base_url)
        if session is not None and trace_configs is not None:
            raise ValueError(
                "trace_configs go to the session the client creates; with "
                "session=, add them to that session"
            )
        if isinstance(max_body_size, bool) or not isinstance(max_body_size, int):
            raise TypeError(f"max_body_size must be an int, got {max_body_size!r}")
        if max_body_size < 1:
            raise ValueError(f"max_body_size must be a positive int, got {max_body_size!r}")
        session_timeout, attempt_timeout = split_timeout(timeout)
        holder = self.holder = SessionHolder(
            session,
            connector_limit=max(100, check_concurrency(concurrency)),
            timeout=session_timeout,
            trace_configs=list(trace_configs or ()),
        )
        if isinstance(token, OfflineTokenAuth):
            token.bind(base, holder.get)
        tokens = self.tokens = TokenSource(token)
        middleware = RetryMiddleware(
            retry if retry is not None else RetryPolicy(),
            tokens=tokens,
            timeout=attempt_timeout,
            budget=retry_budget,
            limiter=None
            if rate_limit is None
            else RateLimiter(rate_limit, clock=clock, sleep=sleep),
            gate=holder.gate,
            max_body=max_body_size,
            on_retry=on_retry,
            sleep=sleep,
            clock=clock,
            rand=rand,
        )
        self.pipeline = Pipeline(holder.get, middleware, holder.their_middlewares)
        self.hub = streams.Hub(
            session=holder.get,
            url=URL(base).with_scheme("wss" if base.startswith("https") else "ws") / _HUB_PATH,
            tokens=tokens,
            budget=middleware.budget,
            on_retry=on_retry,
            sleep=sleep,
            rand=rand,
        )
        #: The worker tasks of `iter_cancel_orders` calls still running (see `aclose`).
        self.runners: set[asyncio.Task[None]] = set()
        self.orders_prefix = f"{base}{_API}/v3/orders/"
        self.stop_orders_prefix = f"{base}{_API}/v3/stop-orders/"
        self.accounts_url = URL(f"{base}{_API}/v3/accounts", encoded=True)

    async def aclose(self) -> None:
        """Streams end at once (`ClientClosedError`), abandoned `iter_cancel_orders` workers
        stop, requests on the wire finish; then the session the client created is closed
        and a running token provider call stopped."""
        await self.hub.aclose()
        # An `iter_cancel_orders` whose consumer left without closing it would keep its
        # workers waiting for a reader forever: they end with the client.
        runners = list(self.runners)
        for runner in runners:
            runner.cancel()
        if runners:
            await asyncio.wait(runners)
        await self.holder.close()
        await self.tokens.aclose()


class Settings:
    """What a client or a view sets for its own calls: the default account, the bulk
    concurrency, extra headers, and the pipeline (retry policy and per-attempt timeout)."""

    __slots__ = (
        "_core",
        "_headers_by_account",
        "account_id",
        "base_headers",
        "concurrency",
        "headers",
        "pipeline",
    )

    def __init__(
        self,
        core: Core,
        pipeline: Pipeline,
        *,
        account_id: str | None,
        concurrency: int,
        headers: Mapping[str, str] | None,
    ) -> None:
        self._core = core
        self.pipeline = pipeline
        self.account_id = None if account_id is None else check_account_id(account_id)
        self.concurrency = check_concurrency(concurrency)
        self.headers = check_headers(headers)
        # A borrowed session has none of our session-wide headers.
        base = {} if core.holder.owns else {"User-Agent": USER_AGENT}
        self.base_headers = {**base, **self.headers}
        self._headers_by_account: dict[tuple[str, bool], dict[str, str]] = {}

    def account_for(self, account_id: str | None) -> str:
        """The call's account, or the default one; ValueError when there is none."""
        if account_id is None:
            if self.account_id is None:
                raise ValueError(
                    "no account id: pass account_id= to the call or to FrontOfficeClient"
                )
            return self.account_id
        return check_account_id(account_id)

    def headers_for(self, account_id: str, *, stop: bool = False) -> dict[str, str]:
        """The headers of a call on `account_id` (built once per account); RuntimeError when
        the client is closed or used from another loop, before anything else happens."""
        self._core.holder.get()
        key = (account_id, stop)
        headers = self._headers_by_account.get(key)
        if headers is None:
            extra = _STOP_ORDER_HEADERS if stop else {}
            headers = {**extra, **self.base_headers, "accountId": account_id}
            self._headers_by_account[key] = headers
        return headers

    def canceller(
        self, cls: type[T], account_id: str | None, *, stop: bool = False
    ) -> Canceller[T]:
        """Cancels one id of `cls` (an order, or with `stop` a stop order) on the account."""
        core = self._core
        prefix = core.stop_orders_prefix if stop else core.orders_prefix
        headers = self.headers_for(self.account_for(account_id), stop=stop)
        return functools.partial(self._cancel, prefix, cls, headers)

    async def _cancel(
        self,
        prefix: str,
        cls: type[T],
        headers: Mapping[str, str],
        order_id: str,
        halt: Halt | None = None,
    ) -> tuple[T, int]:
        """DELETE one order; the record and the attempts it took, or a `FrontOfficeError`."""
        url = URL(prefix + order_path_segment(order_id), encoded=True)
        send = self.pipeline.send
        body, attempts = await send("DELETE", url, headers, order_id=order_id, halt=halt)
        try:
            return _converter.read_record(body, cls, url=url, attempts=attempts), attempts
        except ResponseValidationError as error:
            # The body is kept on the error: a server that echoes the token must not show it.
            _answers.scrub(error, self.pipeline.retry.tokens.secrets)
            raise

    async def snapshot(self, account_id: str, timeout: float | None) -> list[Any]:
        """The raw records of the account's OpenOrders snapshot (see `streams`)."""
        self._core.holder.get()
        return await streams.read_snapshot(
            self._core.hub,
            account_id,
            timeout=timeout,
            policy=self.pipeline.retry.policy,
            headers=self.base_headers,
        )


def check_concurrency(concurrency: object) -> int:
    """`concurrency` if it is a positive int, else ValueError."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive int, got {concurrency!r}")
    return concurrency


def split_timeout(
    timeout: float | aiohttp.ClientTimeout | None,
) -> tuple[aiohttp.ClientTimeout, float | None]:
    """(the session's timeout, the per-attempt limit the retry middleware enforces)."""
    # The session's `total` would span every retry and sleep, so it stays unset.
    if isinstance(timeout, aiohttp.ClientTimeout):
        per_attempt = check_timeout(timeout.total)
        session_timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeout.connect,
            sock_connect=timeout.sock_connect,
            sock_read=timeout.sock_read,
        )
    else:
        per_attempt = check_timeout(timeout)
        session_timeout = aiohttp.ClientTimeout(total=None)
    return session_timeout, per_attempt


def check_timeout(timeout: object) -> float | None:
    """A per-attempt limit: seconds > 0 and finite, an `aiohttp.ClientTimeout` (its
    `total`), or None for none."""
    if isinstance(timeout, aiohttp.ClientTimeout):
        timeout = timeout.total
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}")
    if not 0 < timeout < math.inf:
        raise ValueError(f"timeout must be > 0 seconds and finite, or None, got {timeout!r}")
    return float(timeout)
