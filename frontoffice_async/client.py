"""`FrontOfficeClient`: the session manager and the endpoint calls.

A call builds its request here, passes the auth and retry middlewares, and comes back as a
record (2xx, via the converter) or a typed error (non-2xx, via `errors`).
"""

from __future__ import annotations

import asyncio
import platform
import random
import time
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import quote

import aiohttp
from yarl import URL

from . import _converter, bulk, streams
from ._ratelimit import RateLimiter
from ._version import __version__
from .auth import AuthMiddleware, OfflineTokenAuth, TokenProvider, TokenSource
from .errors import (
    FrontOfficeError,
    InvalidAccountIdError,
    InvalidOrderIdError,
    ResponseValidationError,
    _OrderIdTypeError,
    make_connection_error,
    make_status_error,
)
from .models import Account, OpenOrder, Order, OrderSide, StopOrder
from .retry import RetryEvent, RetryMiddleware, RetryPolicy, _call_state, _CallState

__all__ = ["FrontOfficeClient"]

T = TypeVar("T")

_API: Final = "/frontoffice/api"
_MAX_ID_LENGTH: Final = 128
_USER_AGENT: Final = (
    f"frontoffice-async/{__version__} aiohttp/{aiohttp.__version__} "
    f"python/{platform.python_version()}"
)


class FrontOfficeClient:
    """Async client for the Front Office API; one per process is usually right.

    Use it as an async context manager (or call `close()`); it creates its
    `aiohttp.ClientSession` lazily inside the running loop and closes it on exit. A session
    passed as `session=` is used as is and never closed. Calls are safe to run concurrently
    from many tasks and share one connection pool.

    Example:
        >>> async with FrontOfficeClient(url, token=token, account_id=account) as client:
        ...     order = await client.cancel_order("01K2PF9XS29WN4JZRHMCTTQYJB")
        ...     result = await client.cancel_all_orders(market_id="spot.eth_usdt")

    Args:
        base_url: The broker's root URL (`https://host`); API paths are appended to it.
        token: A bearer token, or an async callable returning a fresh one (asked again
            once when a call gets 401).
        account_id: The default `accountId` for calls that act on an account.
        retry: When to resend; see `RetryPolicy`.
        timeout: Seconds per attempt (or an `aiohttp.ClientTimeout`, whose `total` is per
            attempt and whose socket limits go to the session).
        concurrency: Default number of concurrent requests for bulk calls.
        rate_limit: Optional requests per second, client-wide, retries included.
        session: A caller's `aiohttp.ClientSession`; never closed by the client.
        on_retry: Called with a `RetryEvent` before each resend.
        sleep: Injectable `asyncio.sleep`, for tests.
        clock: Injectable monotonic clock, for tests.
        rand: Injectable `random.random`, for tests.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | TokenProvider,
        account_id: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | aiohttp.ClientTimeout | None = 10.0,
        concurrency: int = 32,
        rate_limit: float | None = None,
        session: aiohttp.ClientSession | None = None,
        on_retry: Callable[[RetryEvent], object] | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._base = _normalise_base_url(base_url)
        if isinstance(token, OfflineTokenAuth):
            token.bind(self._base, self._ensure_session)
        self._tokens = TokenSource(token)
        self.account_id = None if account_id is None else _check_account_id(account_id)
        self.retry = retry if retry is not None else RetryPolicy()
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive int, got {concurrency!r}")
        self.concurrency = concurrency
        self._session_timeout, attempt_timeout = _split_timeout(timeout)
        limiter = None if rate_limit is None else RateLimiter(rate_limit, clock=clock, sleep=sleep)
        self._retry_middleware = RetryMiddleware(
            self.retry,
            timeout=attempt_timeout,
            limiter=limiter,
            on_retry=on_retry,
            sleep=sleep,
            clock=clock,
            rand=rand,
        )
        self._auth_middleware = AuthMiddleware(self._tokens)
        self._middlewares: tuple[Any, ...] = (self._auth_middleware, self._retry_middleware)
        self._session = session
        self._owns_session = session is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._headers_by_account: dict[str, dict[str, str]] = {}
        self._extra_headers: dict[str, str] = {}
        if session is not None:
            # Per-request `middlewares=` replaces the session's own: keep theirs outside ours.
            theirs = tuple(getattr(session, "_middlewares", ()) or ())
            self._middlewares = (*theirs, *self._middlewares)
            self._extra_headers = {"User-Agent": _USER_AGENT}
        base = self._base
        self._orders_prefix = f"{base}{_API}/v3/orders/"
        self._stop_orders_prefix = f"{base}{_API}/v3/stop-orders/"
        self._accounts_url = URL(f"{base}{_API}/v3/accounts", encoded=True)
        self._hub_url = (
            URL(base)
            .with_scheme("wss" if base.startswith("https") else "ws")
            .with_path("/frontoffice/ws/v4/account")
        )

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session the client created (never a borrowed one). Idempotent."""
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    @property
    def closed(self) -> bool:
        """True once `close()` has run."""
        return self._closed

    @property
    def retry_budget_left(self) -> int:
        """Retry tokens left in the client-wide budget (500 when idle; see `RetryBudget`)."""
        return self._retry_middleware.budget.available

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<FrontOfficeClient {self._base} account_id={self.account_id!r} "
            f"token={self._tokens!r} {state}>"
        )

    def _ensure_session(self) -> aiohttp.ClientSession:
        session = self._session
        loop = asyncio.get_running_loop()
        if session is not None and loop is self._loop:
            return session
        if self._closed:
            raise RuntimeError("this FrontOfficeClient is closed; create a new one")
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError(
                "this FrontOfficeClient belongs to another event loop; create one client per loop"
            )
        if session is None:
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=max(100, self.concurrency)),
                timeout=self._session_timeout,
                headers={"User-Agent": _USER_AGENT},
            )
        return session

    # --- endpoints ------------------------------------------------------------------------------

    async def cancel_order(self, order_id: str, *, account_id: str | None = None) -> Order:
        """Cancel one active order and return it as the server reports it (status Cancelled).

        Raises `OrderNotFoundError` for an unknown order (`after_retry` tells whether an earlier
        attempt probably cancelled it), `BadRequestError`/`ConflictError` for an order that is
        no longer active, and `InvalidOrderIdError` before any request for an impossible id.
        """
        order, _ = await self._cancel(self._orders_prefix, Order, order_id, account_id)
        return order

    async def cancel_stop_order(
        self, order_id: str, *, account_id: str | None = None
    ) -> StopOrder:
        """Cancel one stop order (`DELETE /v3/stop-orders/{id}`)."""
        order, _ = await self._cancel(self._stop_orders_prefix, StopOrder, order_id, account_id)
        return order

    async def list_accounts(self) -> list[Account]:
        """The trading accounts the token can act on (no `accountId` needed)."""
        url = self._accounts_url
        body, state = await self._send("GET", url, self._extra_headers)
        try:
            data = _converter.load_body(body, url)
            return _converter.structure_list(data, Account, url=url, body=body)
        except ResponseValidationError as exc:
            exc.attempts = state.attempts
            raise

    async def cancel_orders(
        self,
        order_ids: Iterable[str] | AsyncIterable[str],
        *,
        account_id: str | None = None,
        concurrency: int | None = None,
        on_outcome: Callable[[bulk.CancelOutcome], object] | None = None,
        dedupe: bool = True,
    ) -> bulk.BulkCancelResult:
        """Cancel many orders with a fixed pool of workers; one outcome per distinct id.

        Accepts any iterable or async iterable (consumed lazily). Failures never stop the
        other ids; they are outcomes with an `error`. `on_outcome` sees each outcome as it
        arrives, so none is lost if the caller is cancelled. Repeated ids are sent once;
        with `dedupe=False` (for sources known to be distinct) nothing per id is remembered.
        See `BulkCancelResult`.
        """
        return await bulk.cancel_orders(
            self,
            order_ids,
            account_id=self._account_for(account_id),
            concurrency=self.concurrency if concurrency is None else concurrency,
            on_outcome=on_outcome,
            dedupe=dedupe,
        )

    def iter_cancel_orders(
        self,
        order_ids: Iterable[str] | AsyncIterable[str],
        *,
        account_id: str | None = None,
        concurrency: int | None = None,
        dedupe: bool = True,
    ) -> AsyncGenerator[bulk.CancelOutcome, None]:
        """Like `cancel_orders`, but yields each `CancelOutcome` as it completes.

        Memory stays bounded by `concurrency` plus the set of ids seen (about 110 bytes per
        distinct id); with `dedupe=False` it is O(concurrency) for any number of ids, and a
        repeated id is sent again. Leaving the loop early cancels the remaining work; wrap
        in `contextlib.aclosing` to do it at once.
        """
        return bulk.iter_cancel_orders(
            self,
            order_ids,
            account_id=self._account_for(account_id),
            concurrency=self.concurrency if concurrency is None else concurrency,
            dedupe=dedupe,
        )

    async def open_orders(
        self, *, account_id: str | None = None, timeout: float | None = 10.0
    ) -> list[OpenOrder]:
        """A snapshot of the account's active orders, from the OpenOrders stream."""
        return await streams.snapshot(self._stream_for(account_id), timeout=timeout)

    def stream_open_orders(self, *, account_id: str | None = None) -> streams.OpenOrdersStream:
        """The live OpenOrders stream, for bots that keep it open.

        Use as `async with client.stream_open_orders() as stream: async for batch in stream`.
        """
        return self._stream_for(account_id)

    async def cancel_all_orders(
        self,
        *,
        market_id: str | None = None,
        side: OrderSide | str | None = None,
        account_id: str | None = None,
        concurrency: int | None = None,
        on_outcome: Callable[[bulk.CancelOutcome], object] | None = None,
    ) -> bulk.BulkCancelResult:
        """Cancel every active order of the account, optionally of one market and/or side.

        Takes an `open_orders()` snapshot, filters it, and cancels with `cancel_orders`.
        Orders that vanished in between come back as `not_found`, not as failures: an order
        refused as "not cancellable" (400/409) is checked against a second snapshot, and if
        it is no longer open its outcome becomes an `OrderNotFoundError` caused by the
        refusal. `on_outcome` sees each outcome as it arrived, before that check.
        """
        account = self._account_for(account_id)
        wanted_side = None if side is None else _parse_side(side)
        orders = await self.open_orders(account_id=account)
        ids = [
            o.order_id
            for o in orders
            if (market_id is None or o.market_id == market_id)
            and (wanted_side is None or o.side == wanted_side)
        ]
        result = await self.cancel_orders(
            # A snapshot lists each order once: nothing to deduplicate.
            ids,
            account_id=account,
            concurrency=concurrency,
            on_outcome=on_outcome,
            dedupe=False,
        )
        if any(bulk.was_refused(o) for o in result):
            try:
                still_open = {o.order_id for o in await self.open_orders(account_id=account)}
            except FrontOfficeError:
                return result  # cannot tell: report the refusals as they came
            result = bulk.mark_vanished(result, still_open)
        return result

    # --- plumbing -------------------------------------------------------------------------------

    async def _cancel(
        self, prefix: str, cls: type[T], order_id: str, account_id: str | None
    ) -> tuple[T, int]:
        """DELETE one order; returns the record and the attempts it took."""
        url = URL(prefix + _order_path_segment(order_id), encoded=True)
        headers = self._headers_for(account_id)
        body, state = await self._send("DELETE", url, headers, order_id)
        try:
            data = _converter.load_body(body, url)
            if not isinstance(data, dict) or "order" not in data:
                raise _converter.invalid_response(
                    "expected an object with an `order` key", "order", url, body
                )
            record = _converter.structure(data["order"], cls, path="order", url=url, body=body)
        except ResponseValidationError as exc:
            exc.attempts = state.attempts
            raise
        return record, state.attempts

    async def _send(
        self, method: str, url: URL, headers: Mapping[str, str], order_id: str | None = None
    ) -> tuple[bytes, _CallState]:
        """Send through the middlewares; the 2xx body, or the typed error of the answer.

        `order_id` marks an order endpoint (its 404 is `OrderNotFoundError`).
        """
        session = self._session
        if session is None or self._loop is not asyncio.get_running_loop():
            session = self._ensure_session()
        state = _CallState()
        reset = _call_state.set(state)
        try:
            response = await session.request(
                method,
                url,
                headers=headers,
                allow_redirects=False,
                middlewares=self._middlewares,
            )
            body = state.body  # read by the retry middleware, within the attempt's limit
            if body is None:  # a request path that skipped our middlewares (mocks)
                body = await response.read()
                response.release()
        except FrontOfficeError:
            raise
        except (aiohttp.ClientError, OSError) as exc:
            raise make_connection_error(
                exc, method=method, url=str(url), attempts=max(state.attempts, 1)
            ) from exc
        finally:
            _call_state.reset(reset)
        if not state.attempts:  # a session whose request path skips middlewares (mocks)
            state.attempts = 1
        status = response.status
        if 200 <= status < 300:
            return body, state
        raise make_status_error(
            status=status,
            method=method,
            url=str(url),
            headers=response.headers,
            body=body,
            attempts=state.attempts,
            order_id=order_id,
            after_retry=state.ambiguous,
        )

    def _account_for(self, account_id: str | None) -> str:
        if account_id is None:
            account_id = self.account_id
            if account_id is None:
                raise ValueError(
                    "no account id: pass account_id= to the call or to FrontOfficeClient"
                )
            return account_id
        return _check_account_id(account_id)

    def _headers_for(self, account_id: str | None) -> dict[str, str]:
        if self._closed:
            raise RuntimeError("this FrontOfficeClient is closed; create a new one")
        account = self._account_for(account_id)
        headers = self._headers_by_account.get(account)
        if headers is None:
            headers = self._headers_by_account[account] = {
                **self._extra_headers,
                "accountId": account,
            }
        return headers

    def _stream_for(self, account_id: str | None) -> streams.OpenOrdersStream:
        return streams.OpenOrdersStream(
            self._ensure_session(),
            self._hub_url,
            self._tokens,
            self._account_for(account_id),
        )


def _order_path_segment(order_id: object) -> str:
    """The id, percent-encoded as exactly one path segment, or `InvalidOrderIdError`."""
    if not isinstance(order_id, str):
        raise _OrderIdTypeError(order_id, f"expected a str, got {type(order_id).__name__}")
    if order_id.isalnum() and order_id.isascii() and len(order_id) <= _MAX_ID_LENGTH:
        return order_id  # the usual ULID: nothing to check or encode
    if not order_id or order_id.isspace():
        raise InvalidOrderIdError(order_id, "empty or blank")
    if order_id != order_id.strip():
        raise InvalidOrderIdError(order_id, "leading or trailing whitespace")
    if order_id in {".", ".."}:
        raise InvalidOrderIdError(order_id, "a dot segment is not an id")
    if len(order_id) > _MAX_ID_LENGTH:
        raise InvalidOrderIdError(order_id, f"longer than {_MAX_ID_LENGTH} characters")
    if not order_id.isprintable():
        raise InvalidOrderIdError(order_id, "contains control characters")
    return quote(order_id, safe="")


def _parse_side(side: OrderSide | str) -> OrderSide:
    """`OrderSide.BUY`, "Buy" or "buy" -> `OrderSide.BUY`; anything else is a ValueError."""
    for member in OrderSide:
        if isinstance(side, str) and side.casefold() == member.value.casefold():
            return member
    raise ValueError(f"side must be one of {[m.value for m in OrderSide]}, got {side!r}")


def _check_account_id(account_id: object) -> str:
    if not isinstance(account_id, str):
        raise TypeError(f"account_id must be a str, got {type(account_id).__name__}")
    if not account_id or len(account_id) > _MAX_ID_LENGTH:
        raise InvalidAccountIdError("account_id must be 1 to 128 characters")
    if not (account_id.isascii() and account_id.isprintable()) or " " in account_id:
        # Goes into a header: CR/LF or non-ASCII would be header injection or mojibake.
        raise InvalidAccountIdError(
            f"account_id {account_id[:40]!r} holds spaces, control or non-ASCII chars"
        )
    return account_id


def _normalise_base_url(base_url: str) -> str:
    if not isinstance(base_url, str):
        raise TypeError(f"base_url must be a str, got {type(base_url).__name__}")
    url = URL(base_url.strip())
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValueError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
    if url.user or url.password or url.query_string or url.fragment:
        raise ValueError("base_url must not carry credentials, a query or a fragment")
    return str(url).rstrip("/")


def _split_timeout(
    timeout: float | aiohttp.ClientTimeout | None,
) -> tuple[aiohttp.ClientTimeout, float | None]:
    """(the session's timeout, the per-attempt limit the retry middleware enforces)."""
    # The session's `total` would span every retry and sleep, so it stays unset.
    if isinstance(timeout, aiohttp.ClientTimeout):
        per_attempt = timeout.total
        session_timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeout.connect,
            sock_connect=timeout.sock_connect,
            sock_read=timeout.sock_read,
        )
    else:
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
        per_attempt = timeout
        session_timeout = aiohttp.ClientTimeout(total=None)
    return session_timeout, per_attempt
