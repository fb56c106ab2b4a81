"""`FrontOfficeClient`: the session manager and the endpoint calls.

A facade: each method checks its arguments and hands the work down. Single calls go to the
request path (`_http`: the view's `ViewCalls` builds the request, the pipeline sends it through
the retry middleware and aiohttp, the answer comes back as a record or a typed error); bulk
calls run `_stop.pool` over a "cancel this id" callable; snapshots and streams come from the
hub (`_hub`); cancel-all is `_stop.cancel_all`.
"""

from __future__ import annotations

import asyncio
import copy
import enum
import os
import random
import time
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Self

import aiohttp
import attrs

from ._http.checks import (
    check_headers,
    check_market_id,
    check_rounds,
    order_path_segment,
    parse_side,
)
from ._http.endpoints import HttpShared, ViewCalls, check_concurrency, check_timeout
from ._http.middleware import DEFAULT_MAX_BODY
from ._hub.reconnect import DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_SERVER_TIMEOUT, Hub, hub_url
from ._hub.report import typed
from ._hub.snapshot import check_settle, read_snapshot
from ._hub.streams import OpenOrdersStream
from ._stop import cancel_all, pool
from ._stop.flatten import Plan
from ._stop.flatten import flatten as flatten_accounts
from ._stop.guard import Guard, OnError, OnStop, guard_hello
from ._stop.journal import Journal, JournalTarget, journaled
from ._stop.ops import Binder
from .auth import TokenProvider
from .bulk import BulkCancelResult, CancelOutcome, FlattenResult
from .errors import ClientClosedError, ResponseValidationError
from .models import (
    Account,
    OpenOrder,
    OpenPosition,
    Order,
    OrderSide,
    PositionsCloseAck,
    StopOrder,
)
from .retry import RetryBudget, RetryEvent, RetryPolicy

__all__ = ["FrontOfficeClient"]


class _Unset(enum.Enum):
    """ "Not given" for `with_options`, where None is a value (no account, no timeout)."""

    UNSET = 0


_UNSET: Final = _Unset.UNSET


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
        base_url: The broker's root URL (`https://host`, maybe with a path prefix); API paths
            are appended to it.
        token: A bearer token, or an async callable returning a fresh one (asked again
            before it expires and once when a call gets 401).
        account_id: The default `accountId` for calls that act on an account.
        retry: When to resend; see `RetryPolicy`.
        timeout: Seconds per attempt (or an `aiohttp.ClientTimeout`, whose `total` is per
            attempt and whose socket limits go to the session the client creates).
        concurrency: Default number of concurrent requests for bulk calls.
        rate_limit: Optional requests per second, client-wide, retries included.
        session: A caller's `aiohttp.ClientSession`; never closed by the client. Its
            `trace_configs`, cookies and middlewares are the caller's business.
        default_headers: Extra headers on every request (not `Authorization`/`accountId`).
        trace_configs: `aiohttp.TraceConfig`s for the session the client creates (e.g.
            OpenTelemetry); with `session=`, configure that session instead. Not applied to
            the OpenOrders hub's websocket upgrade, whose URL holds the token.
        retry_budget: A `RetryBudget` to share with other clients (default: one of its own).
        max_body_size: Bytes of a response body read at most, after decompression.
        snapshot_settle: Seconds after a snapshot's first item during which later items of
            the hub still belong to it (merged by id: the latest state of an order wins);
            None: 0.5. Cancel-all starts cancelling on the first item; only its verdict waits.
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
        default_headers: Mapping[str, str] | None = None,
        trace_configs: Iterable[aiohttp.TraceConfig] | None = None,
        retry_budget: RetryBudget | None = None,
        max_body_size: int = DEFAULT_MAX_BODY,
        snapshot_settle: float | None = None,
        on_retry: Callable[[RetryEvent], object] | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        http = self._http = HttpShared(
            base_url,
            token=token,
            retry=retry,
            timeout=timeout,
            concurrency=concurrency,
            rate_limit=rate_limit,
            session=session,
            trace_configs=trace_configs,
            retry_budget=retry_budget,
            max_body_size=max_body_size,
            on_retry=on_retry,
            sleep=sleep,
            clock=clock,
            rand=rand,
        )
        self._hub = Hub(
            session=http.holder.get,
            url=hub_url(http.base),
            tokens=http.tokens,
            budget=http.middleware.shared.budget,
            on_retry=on_retry,
            sleep=sleep,
            rand=rand,
            own_connector=http.holder.owns,
        )
        #: The bulk calls still running: `close` stops them (see `pool.BulkCalls`).
        self._bulk = pool.BulkCalls()
        self._calls = ViewCalls(
            http, http.pipeline(http.middleware), account_id=account_id, headers=default_headers
        )
        self._concurrency = check_concurrency(concurrency)
        self._snapshot_settle = None if snapshot_settle is None else check_settle(snapshot_settle)
        self._is_view = False

    def with_options(
        self,
        *,
        account_id: str | _Unset | None = _UNSET,
        retry: RetryPolicy | _Unset = _UNSET,
        timeout: float | aiohttp.ClientTimeout | _Unset | None = _UNSET,
        default_headers: Mapping[str, str] | _Unset = _UNSET,
        concurrency: int | _Unset = _UNSET,
    ) -> FrontOfficeClient:
        """A view of this client with some settings changed, for one call or a few.

        The view shares the session, connection pool, token, retry budget and rate limiter;
        its `default_headers` are merged over this client's; `timeout` changes the per-attempt
        limit only. A view has nothing to close; after this client closes, its calls raise.

        Example:
            >>> await client.with_options(retry=RetryPolicy.none(), timeout=2.0).cancel_order(oid)
        """
        mine = self._calls
        pipeline = mine.pipeline
        if retry is not _UNSET and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        if retry is not _UNSET or timeout is not _UNSET:
            middleware = pipeline.retry
            pipeline = self._http.pipeline(
                attrs.evolve(
                    middleware,
                    policy=middleware.policy if retry is _UNSET else retry,
                    timeout=middleware.timeout if timeout is _UNSET else check_timeout(timeout),
                )
            )
        calls = ViewCalls(
            self._http,
            pipeline,
            account_id=mine.account_id if account_id is _UNSET else account_id,
            headers=mine.headers
            if default_headers is _UNSET
            else {**mine.headers, **check_headers(default_headers)},
        )
        view = copy.copy(self)
        view._calls = calls
        view._concurrency = (
            self._concurrency if concurrency is _UNSET else check_concurrency(concurrency)
        )
        view._is_view = True
        return view

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._http.holder.get()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the client: no new request leaves, requests already on the wire finish
        (each within its per-attempt limit), then the session it created is closed (never a
        borrowed one). Idempotent; a view's `close()` does nothing."""
        if self._is_view:
            return
        # Streams end at once (`ClientClosedError`); bulk calls take no more ids; requests on
        # the wire finish (their outcomes are kept), then the session closes. An
        # `iter_cancel_orders` finishes its work too, even if its consumer walked away.
        self._bulk.close()
        await self._hub.aclose()
        await self._http.aclose()
        await self._bulk.wait()

    @property
    def closed(self) -> bool:
        """True once `close()` has run (on this client or, for a view, its parent)."""
        return self._http.holder.closed

    @property
    def account_id(self) -> str | None:
        """The default `accountId` of calls."""
        return self._calls.account_id

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy calls use (change it for a call with `with_options`)."""
        return self._calls.pipeline.retry.policy

    @property
    def concurrency(self) -> int:
        """The default worker count of bulk calls."""
        return self._concurrency

    @property
    def retry_budget_left(self) -> int:
        """Retry tokens left in the client-wide budget (500 when idle; see `RetryBudget`)."""
        return self._calls.pipeline.retry.shared.budget.available

    def __repr__(self) -> str:
        holder = self._http.holder
        state = "closed" if holder.closed else "open" if holder.started else "not started"
        kind = "view of " if self._is_view else ""
        return (
            f"<FrontOfficeClient {kind}{self._http.base} account_id={self._calls.account_id!r} "
            f"token={self._http.tokens!r} {state}>"
        )

    # --- single calls ---------------------------------------------------------------------------

    async def cancel_order(self, order_id: str, *, account_id: str | None = None) -> Order:
        """Cancel one active order and return it as the server reports it (status Cancelled).

        Raises `OrderNotFoundError` (404) for an unknown order, `OrderNotActiveError` (400) for
        one that is final (`after_retry` on either tells whether an earlier attempt probably
        cancelled it), `ConflictError` (409) when the platform is busy with it, and
        `InvalidOrderIdError` before any request for an impossible id.
        """
        record, _ = await self._calls.canceller(Order, account_id)(order_id, None)
        return record

    async def cancel_stop_order(
        self, order_id: str, *, account_id: str | None = None
    ) -> StopOrder:
        """Cancel one stop order (`DELETE /v3/stop-orders/{id}`); errors as `cancel_order`.

        Sends `Content-Type: application/json; x-api-version=4.0` as the platform's own example
        does (whether the server needs it is not documented); `default_headers` can override it.
        """
        record, _ = await self._calls.canceller(StopOrder, account_id, stop=True)(order_id, None)
        return record

    async def list_accounts(self) -> list[Account]:
        """The trading accounts the token can act on (no `accountId` needed)."""
        return await self._calls.list_accounts()

    # --- bulk -----------------------------------------------------------------------------------

    async def cancel_orders(
        self,
        order_ids: Iterable[str] | AsyncIterable[str],
        *,
        account_id: str | None = None,
        concurrency: int | None = None,
        on_outcome: Callable[[CancelOutcome[Order]], object] | None = None,
        dedupe: bool = True,
        journal: JournalTarget | None = None,
    ) -> BulkCancelResult[Order]:
        """Cancel many orders with a fixed pool of workers; one outcome per distinct id.

        Accepts any iterable or async iterable (consumed lazily). A failure never stops the
        other ids (it is an outcome with an `error`), except that after a 401 the refresh did
        not cure, a 403 or a token-provider failure nothing more is sent: the ids left get that
        error with `attempts == 0`. `on_outcome` sees each outcome as it arrives. If the call
        is aborted (the input raises, `close()`), the requests already sent finish and reach
        `on_outcome` before the one exception propagates. Repeated ids are sent once; with
        `dedupe=False` (for sources known to be distinct) nothing per id is remembered.
        `journal` (a path, appended to, or a text file) records the run as JSON Lines: see
        the docs' "Flatten" page.
        """
        account = self._calls.account_for(account_id)
        with journaled(journal, self._secrets, call="cancel_orders", account=account) as log:
            watch = None if log is None else log.watch(account)
            result = await pool.cancel_orders(
                self._calls.canceller(Order, account, watch=watch),
                order_ids,
                concurrency=self._concurrency if concurrency is None else concurrency,
                on_outcome=on_outcome if log is None else log.sink(account, "order", on_outcome),
                dedupe=dedupe,
                owner=self._bulk,
            )
            if log is not None:
                log.event("summary", **result.as_dict())
            return result

    async def cancel_stop_orders(
        self,
        order_ids: Iterable[str] | AsyncIterable[str],
        *,
        account_id: str | None = None,
        concurrency: int | None = None,
        on_outcome: Callable[[CancelOutcome[StopOrder]], object] | None = None,
        dedupe: bool = True,
    ) -> BulkCancelResult[StopOrder]:
        """`cancel_orders` for stop orders: each outcome's `order` is a `StopOrder`.

        The documented API lists no open stop orders, so cancel-all cannot find them: keep
        the ids your bot placed and cancel them with this.
        """
        return await pool.cancel_orders(
            self._calls.canceller(StopOrder, account_id, stop=True),
            order_ids,
            concurrency=self._concurrency if concurrency is None else concurrency,
            on_outcome=on_outcome,
            dedupe=dedupe,
            owner=self._bulk,
        )

    def iter_cancel_orders(
        self,
        order_ids: Iterable[str] | AsyncIterable[str],
        *,
        account_id: str | None = None,
        concurrency: int | None = None,
        dedupe: bool = True,
    ) -> AsyncGenerator[CancelOutcome[Order], None]:
        """Like `cancel_orders`, but yields each `CancelOutcome` as it completes.

        Memory stays bounded by `concurrency` plus the compact set of ids seen (about 80
        bytes per distinct ULID); with `dedupe=False` it is O(concurrency) for any number of
        ids, and a repeated id is sent again. Leaving the loop early cancels the remaining
        work when the generator is closed: wrap it in `contextlib.aclosing` to do that at
        once (otherwise at the latest when the client closes).
        """
        return pool.iter_cancel_orders(
            self._calls.canceller(Order, account_id),
            order_ids,
            concurrency=self._concurrency if concurrency is None else concurrency,
            dedupe=dedupe,
            owner=self._bulk,
        )

    # --- open orders and cancel-all -------------------------------------------------------------

    async def open_orders(
        self,
        *,
        market_id: str | None = None,
        side: OrderSide | str | None = None,
        account_id: str | None = None,
        timeout: float | None = 10.0,
    ) -> list[OpenOrder]:
        """A snapshot of the account's active orders from the OpenOrders hub, optionally of one
        market and/or side (any letter case). Never assumed: a hub that ends or goes quiet
        before its snapshot is an error, not "no orders". Strict: a record that does not parse
        raises `ResponseValidationError` naming it."""
        wanted = None if side is None else parse_side(side)
        market_id = check_market_id(market_id)
        records = await self._snapshot(self._calls.account_for(account_id), timeout)
        orders = typed(records, OpenOrder, url=self._hub.url, secrets=self._secrets())
        return [
            o
            for o in orders
            if (market_id is None or o.market_id == market_id)
            and (wanted is None or o.side == wanted)
        ]

    def stream_open_orders(
        self,
        *,
        account_id: str | None = None,
        reconnect: bool = True,
        server_timeout: float | None = DEFAULT_SERVER_TIMEOUT,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> OpenOrdersStream:
        """The live OpenOrders stream, for bots that keep it open.

        Use as `async with client.stream_open_orders() as stream: async for event in stream`;
        each event is an `OpenOrdersEvent`. The first one is the snapshot; after a graceful
        close by the hub (a deploy), a Close with `allowReconnect: true` or a lost connection
        the stream connects again as the retry policy allows, and the next event is a fresh
        snapshot. A Close with an error and without `allowReconnect: true` raises `HubError`
        (`reconnect=False`: a Close without an error ends the iteration, anything else
        raises). `server_timeout`: seconds of silence after which the hub counts as dead;
        `handshake_timeout`: seconds for the upgrade and the SignalR handshake of each
        connection.
        """
        self._http.holder.get()
        return OpenOrdersStream(
            self._hub,
            self._calls.account_for(account_id),
            policy=self._calls.pipeline.retry.policy,
            headers=self._calls.base_headers,
            reconnect=reconnect,
            server_timeout=server_timeout,
            handshake_timeout=handshake_timeout,
        )

    async def cancel_all_orders(
        self,
        *,
        market_id: str | None = None,
        side: OrderSide | str | None = None,
        account_id: str | None = None,
        rounds: int = 3,
        concurrency: int | None = None,
        on_outcome: Callable[[CancelOutcome[Order]], object] | None = None,
        snapshot_timeout: float | None = 10.0,
        dry_run: bool = False,
        journal: JournalTarget | None = None,
    ) -> BulkCancelResult[Order]:
        """Cancel every active order of the account (optionally one market and/or side), and
        check that none is left.

        Takes a snapshot, cancels what matches, takes another and cancels what still matches
        (orders placed meanwhile, cancels that failed), up to `rounds` passes; the last
        snapshot gives `remaining` and `verified`, and `raise_for_failures()` raises while
        anything may still be open. Each snapshot may take `snapshot_timeout` seconds (hub
        reconnects included); each cancel is bounded by the retry policy. `on_outcome` sees
        every outcome of every round. `dry_run=True` takes one snapshot and cancels nothing:
        the orders it would cancel are the result's `remaining`. `journal` records the run
        (see `cancel_orders`).
        """
        account = self._calls.account_for(account_id)
        wanted = None if side is None else parse_side(side)
        market_id = check_market_id(market_id)
        workers = self._concurrency if concurrency is None else concurrency
        check_concurrency(workers)  # before the snapshot: a bad argument sends nothing
        check_rounds(rounds)
        plan = {"market_id": market_id, "side": side, "rounds": rounds, "dry_run": dry_run}
        with journaled(
            journal, self._secrets, None, call="cancel_all_orders", account=account, **plan
        ) as log:
            ops = self._binder(workers, snapshot_timeout, on_outcome, log).account(account)
            result = await cancel_all.cancel_all(
                ops.orders_snapshot,
                ops.cancel_orders,
                market_id=market_id,
                side=wanted,
                rounds=rounds,
                dry_run=dry_run,
                secrets=self._secrets,
            )
            if log is not None:
                log.event("summary", **result.as_dict())
            return result

    # --- positions and flatten ------------------------------------------------------------------

    async def open_positions(
        self,
        *,
        market_id: str | None = None,
        account_id: str | None = None,
        timeout: float | None = 10.0,
    ) -> list[OpenPosition]:
        """A snapshot of the account's open positions (CFD and Perpetual markets) from the
        OpenPositions hub, optionally of one market. Never assumed, as `open_orders`; strict: a
        record that does not parse raises `ResponseValidationError` naming it."""
        market_id = check_market_id(market_id)
        ops = self._binder(self._concurrency, timeout).account(self._calls.account_for(account_id))
        records = await ops.positions_snapshot()
        positions = typed(records, OpenPosition, url=self._hub.url, secrets=self._secrets())
        return [p for p in positions if market_id is None or p.market_id == market_id]

    async def close_all_positions(self, *, account_id: str | None = None) -> PositionsCloseAck:
        """Close every position of the account (`POST /v4/positions/bulk-close`, mode
        `AllPositions`). The answer is an acknowledgement, not proof: `open_positions()` (or
        `flatten`) tells whether they closed. A POST is not resent after it may have reached
        the platform; only a 429 or a connection that could not be opened is retried."""
        ack, _ = await self._calls.close_all_positions(account_id)
        return ack

    async def close_position(self, position_id: str, *, account_id: str | None = None) -> str:
        """Close one whole position (`POST /v4/positions/{id}/close`); returns its id.

        Raises `InvalidPositionIdError` before anything is sent for an impossible id, and the
        status error of the answer otherwise (a 404: no such open position). Resent only as
        `close_all_positions` is."""
        position, _ = await self._calls.position_closer(account_id)(position_id, None)
        return position

    async def flatten(
        self,
        accounts: str | Iterable[str] | None = None,
        *,
        market_id: str | None = None,
        close_positions: bool = True,
        stop_order_ids: Iterable[str] | Mapping[str, Iterable[str]] = (),
        rounds: int = 3,
        dry_run: bool = False,
        journal: JournalTarget | None = None,
        concurrency: int | None = None,
        on_outcome: Callable[[CancelOutcome[Any]], object] | None = None,
        snapshot_timeout: float | None = 10.0,
        journal_fields: Mapping[str, Any] | None = None,
    ) -> FlattenResult:
        """Stop every account asked for: cancel its open orders, the stop orders given, close
        its positions, and check it with fresh snapshots.

        Per account, round after round: cancel what the OpenOrders snapshot shows (as
        `cancel_all_orders`), cancel the stop orders given that are not final, close what the
        OpenPositions snapshot shows (one bulk close; one close per position with
        `market_id`), then read both snapshots again: closing a position or a stop-out may
        create orders. An account is done when a round finds nothing to do and every stop
        order given is final; `rounds` bounds the rounds that act. Accounts run at once
        (`concurrency` requests in flight for all of them); one account's error (a 403) is its
        `error` and never stops another.

        Args:
            accounts: None for the client's account, `"all"` for every account of
                `list_accounts()`, or account ids.
            market_id: Only this market: its orders, and its positions closed one by one.
            close_positions: False leaves positions alone (neither closed nor checked).
            stop_order_ids: Stop orders to cancel (none can be listed: keep your ids), for the
                one account asked, or a mapping of account id to ids.
            rounds: Rounds that act, at most (a last pair of snapshots then says what is left).
            dry_run: Read the snapshots only: what would be cancelled and closed is each
                account's `remaining`.
            journal: A path (appended to) or a text file: JSON Lines, one event a line, written
                as the run goes (see the docs' "Flatten" page). Never the token.
            concurrency: Requests in flight at most, all accounts together.
            on_outcome: Sees each outcome (orders, stop orders, positions) as it arrives.
            snapshot_timeout: Seconds each snapshot may take (hub reconnects included).
            journal_fields: More fields for the journal's `run` event, first after its
                `time` (who started the run and why: the guard writes its `trigger`); JSON
                values, none named like a field of the event's own.
        """
        market_id = check_market_id(market_id)
        check_rounds(rounds)
        workers = check_concurrency(self._concurrency if concurrency is None else concurrency)
        asked = self._accounts_asked(accounts)
        plan = Plan(
            market_id=market_id, close_positions=close_positions, rounds=rounds, dry_run=dry_run
        )
        with journaled(  # first: a run that fails to list its accounts is recorded too
            journal,
            self._secrets,
            journal_fields,
            call="flatten",
            accounts=asked,
            market_id=market_id,
            close_positions=close_positions,
            rounds=rounds,
            dry_run=dry_run,
        ) as log:
            if isinstance(asked, str):
                ids = await self._list_accounts()
                if isinstance(stop_order_ids, Mapping):
                    # Stop orders given for an account the listing no longer shows are still
                    # tried: its run says what became of them (a 403...), never a ValueError
                    # that stops every account (the guard runs this when the bot is gone).
                    ids += [a for a in stop_order_ids if a not in ids]
            else:
                ids = asked
            stops = _stop_ids_by_account(stop_order_ids, ids)
            if log is not None:
                log.event("accounts", ids=ids, stop_orders={a: list(s) for a, s in stops.items()})
            binder = self._binder(workers, snapshot_timeout, on_outcome, log, gate=True)
            result = await flatten_accounts(
                [(binder.account(a), stops[a]) for a in ids], plan, log
            )
            if log is None:
                return result
            log.event("summary", **result.as_dict())
            if log.error is not None:  # the run went on without its record: say so
                result = attrs.evolve(result, journal_error=log.error)
            return result

    def _accounts_asked(self, accounts: str | Iterable[str] | None) -> list[str] | str:
        """The account ids a flatten acts on, each once, in the order given; or "all"."""
        if accounts is None:
            return [self._calls.account_for(None)]
        if accounts == "all":
            return "all"
        if isinstance(accounts, str):
            raise ValueError('accounts must be None, "all", or an iterable of account ids')
        ids = list(dict.fromkeys(self._calls.account_for(a) for a in accounts))
        if not ids:
            raise ValueError("accounts is empty: nothing to flatten")
        return ids

    async def _list_accounts(self) -> list[str]:
        """Every account the token can act on, each once; an empty list is an error (a
        flatten of nothing would be verified while the platform shows open orders). An id
        that cannot be sent is that account's error (flatten checks it), not the call's."""
        ids = list(dict.fromkeys(a.account_id for a in await self.list_accounts()))
        if not ids:
            raise ResponseValidationError(
                "the platform lists no account: nothing can be flattened",
                url=str(self._http.accounts_url),
            )
        return ids

    def _binder(
        self,
        concurrency: int,
        snapshot_timeout: float | None,
        on_outcome: Callable[[CancelOutcome[Any]], object] | None = None,
        journal: Journal | None = None,
        *,
        gate: bool = False,
    ) -> Binder:
        """The operations of one call, account by account (see `_stop.ops`)."""
        return Binder(
            calls=self._calls,
            hub=self._hub,
            bulk=self._bulk,
            concurrency=concurrency,
            snapshot_timeout=snapshot_timeout,
            settle=self._snapshot_settle,
            on_outcome=on_outcome,
            journal=journal,
            gate=asyncio.Semaphore(concurrency) if gate else None,
        )

    def _secrets(self) -> tuple[str, ...]:
        return self._http.tokens.secrets

    async def _snapshot(
        self,
        account_id: str,
        timeout: float | None,
        on_item: Callable[[list[Any]], object] | None = None,
    ) -> list[Any]:
        """The raw open records of the account's OpenOrders snapshot, merged over the settle
        window (see `_hub.snapshot`); `on_item` sees each item as it arrives."""
        self._http.holder.get()
        calls = self._calls
        return await read_snapshot(
            self._hub,
            account_id,
            timeout=timeout,
            settle=self._snapshot_settle,
            policy=calls.pipeline.retry.policy,
            headers=calls.base_headers,
            on_item=on_item,
        )

    # --- the guard ------------------------------------------------------------------------------

    def guard(
        self,
        *,
        timeout: float = 30.0,
        close_positions: bool = True,
        accounts: str | Iterable[str] | None = None,
        stop_order_ids: Iterable[str] | Mapping[str, Iterable[str]] = (),
        journal: str | os.PathLike[str] | None = None,
        on_error: OnError = "flatten",
        on_stop: OnStop = "disarm",
        market_id: str | None = None,
        rounds: int = 3,
    ) -> Guard:
        """A dead-man's switch that flattens the account if the bot dies or hangs.

        Use it as `async with client.guard(...) as guard:` around the bot's trading. Entering
        starts `frontoffice guard` as a process of its own, in its own session (a Ctrl-C at the
        bot's terminal, or a kill of the bot's process group, does not reach it), hands it the
        job and the token over a pipe (never argv or the environment), and returns once it is
        ready: its HTTP session open and the token checked (a wrong token raises here, e.g.
        `AuthenticationError`; a guard that cannot start raises `GuardError`). Then a task of
        this event loop sends it a heartbeat every `timeout / 4` seconds, each with the
        client's current token, so a refreshed token reaches it.

        The guard runs `flatten` (these options, its `journal`) at once when the pipe closes
        without a disarm (the bot crashed or was killed), and after `timeout` seconds without a
        heartbeat (the event loop is blocked, the bot hangs). Leaving the block disarms it;
        an `Exception` leaving it makes it flatten instead (`on_error="disarm"`: not), and a
        deliberate stop (`KeyboardInterrupt`, `SystemExit`, the task cancelled) disarms it
        (`on_stop="flatten"`: flattens). `__aexit__` waits for the guard to exit: at once when
        disarmed, after its whole flatten otherwise; no guard process remains after the block.
        `guard.alive` turns False, with a warning logged, if the guard dies or acts on its own.
        POSIX only. See the docs' "Guard" page for what it cannot cover.

        Example:
            >>> async with client.guard(timeout=30, journal="guard.jsonl") as guard:
            ...     await run_strategy(client)

        Args:
            timeout: Seconds without a heartbeat after which the guard flattens.
            close_positions: False leaves positions alone, as `flatten`'s.
            accounts: None for the client's account, `"all"` for every account of the token
                (as listed when the guard acts), or account ids.
            stop_order_ids: Stop orders to cancel (none can be listed), for the one account,
                or a mapping of account id to ids.
            journal: A path: the guard appends the JSON Lines journal of its flatten there,
                whose `run` event says why it acted (`"trigger"`). None: no journal.
            on_error: What an `Exception` leaving the block does: `"flatten"` or `"disarm"`.
            on_stop: What `KeyboardInterrupt`, `SystemExit` or cancellation does: `"disarm"`
                or `"flatten"`.
            market_id: Only this market, as `flatten`'s.
            rounds: Rounds that act at most, as `flatten`'s.
        """
        if self.closed:
            raise ClientClosedError("this FrontOfficeClient is closed; create a new one")
        calls = self._calls
        if accounts is None:
            named: list[str] | None = [calls.account_for(None)]
        elif accounts == "all":
            named = None
        elif isinstance(accounts, str):
            raise ValueError('accounts must be None, "all", or an iterable of account ids')
        else:
            named = list(dict.fromkeys(calls.account_for(a) for a in accounts))
            if not named:
                raise ValueError("accounts is empty: nothing to guard")
        if named is not None:
            stops = _stop_ids_by_account(stop_order_ids, named)
        elif isinstance(stop_order_ids, Mapping):
            stops = {calls.account_for(a): _checked_ids(i) for a, i in stop_order_ids.items()}
        elif _checked_ids(stop_order_ids):
            raise ValueError('with accounts="all", give stop_order_ids as {account: ids}')
        else:
            stops = {}
        limiter = self._http.middleware.shared.limiter
        hello = guard_hello(
            timeout=timeout,
            base_url=self._http.base,
            account_id=calls.account_id,
            accounts=None if accounts is None else named if named is not None else "all",
            market_id=check_market_id(market_id),
            close_positions=close_positions,
            stop_order_ids=stops,
            rounds=check_rounds(rounds),
            journal=journal,
            concurrency=self._concurrency,
            request_timeout=calls.pipeline.retry.timeout,
            retry=calls.pipeline.retry.policy,
            rate_limit=None if limiter is None else limiter.rate,
            snapshot_settle=self._snapshot_settle,
            headers=calls.headers,
        )
        return Guard(hello, self._http.tokens, on_error=on_error, on_stop=on_stop)


def _stop_ids_by_account(
    given: Iterable[str] | Mapping[str, Iterable[str]], accounts: list[str]
) -> dict[str, tuple[str, ...]]:
    """The stop-order ids for each account, checked before anything is sent."""
    by_account: dict[str, tuple[str, ...]] = dict.fromkeys(accounts, ())
    if isinstance(given, str):
        raise TypeError("stop_order_ids must be ids (or a mapping of account to ids), not a str")
    if isinstance(given, Mapping):
        for account, ids in given.items():
            if account not in by_account:
                raise ValueError(f"stop_order_ids names an account not flattened: {account!r}")
            by_account[account] = _checked_ids(ids)
        return by_account
    ids = _checked_ids(given)
    if ids and len(accounts) > 1:
        raise ValueError("with several accounts, give stop_order_ids as {account: ids}")
    if ids:
        by_account[accounts[0]] = ids
    return by_account


def _checked_ids(ids: Iterable[str]) -> tuple[str, ...]:
    if isinstance(ids, str):
        raise TypeError("stop order ids must be an iterable of ids, not a single str")
    checked = tuple(dict.fromkeys(ids))
    for order_id in checked:
        order_path_segment(order_id)  # InvalidOrderIdError before anything is sent
    return checked
