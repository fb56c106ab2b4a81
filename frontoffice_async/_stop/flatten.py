"""Flatten: stop every account asked for, and check that it is stopped.

Per account, round after round. A round reads both snapshots at once (OpenOrders and
OpenPositions), and its work starts as early as each part can: the cancels of the stop orders
given that are not final yet at once (they need no snapshot); the order cancels on the orders
snapshot's first item, as cancel-all does; the closes on the positions snapshot's first item
that shows a position (one bulk close a round without a market filter; with one, each
matching position closed as an item brings it; see `positions`). The settle window delays
only the verdict: the work of a round is out in milliseconds.

Closing a position or a stop-out may create orders, and a round's work may race its own
snapshots, so a round that did anything is followed by another pair of snapshots. An account
is done when a round finds nothing to do in either snapshot and every stop order given is
final: those snapshots are its verdict. Accounts run concurrently; one account's failure
never stops another.

When a snapshot fails, what was sent finishes and is kept before its error stops the account;
a cancelled caller stops everything at once. A close is a POST, which is not idempotent: it is
resent within a round only when it surely never reached the platform (the retry policy's
rule); after an ambiguous loss, the next round's snapshot decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import attrs

from .._http.answers import lighten
from ..bulk import AccountFlatten, BulkCancelResult, CancelOutcome, FlattenResult
from ..errors import ClientClosedError, FrontOfficeError
from ..models import Order, StopOrder
from .cancel_all import Feed, Selection, Tally, run_pass, select
from .journal import Journal
from .ops import AccountOps
from .pool import is_fatal
from .positions import Closer, Closes

__all__ = ["Plan", "flatten"]

logger = logging.getLogger("frontoffice_async")


@attrs.frozen
class Plan:
    """What flatten was asked to do on each account."""

    market_id: str | None
    close_positions: bool
    rounds: int
    dry_run: bool


async def flatten(
    accounts: Sequence[tuple[AccountOps, Sequence[str]]],
    plan: Plan,
    journal: Journal | None = None,
) -> FlattenResult:
    """Flatten each account (its operations, and the stop-order ids given for it) at once."""
    started = time.perf_counter()
    runs = [_AccountRun(ops, stops, plan, journal) for ops, stops in accounts]
    async with asyncio.TaskGroup() as group:
        for run in runs:
            group.create_task(run.go(), name=f"frontoffice-flatten-{run.ops.account_id}")
    return FlattenResult(
        accounts={run.ops.account_id: run.result() for run in runs},
        elapsed=time.perf_counter() - started,
        dry_run=plan.dry_run,
    )


class _AccountRun:
    """One account's rounds, and what they found."""

    def __init__(
        self, ops: AccountOps, stops: Sequence[str], plan: Plan, journal: Journal | None
    ) -> None:
        self.ops = ops
        self.plan = plan
        self.journal = journal
        self.stop_ids = tuple(dict.fromkeys(stops))
        self.orders: Tally[Order] = Tally()
        self.stops: Tally[StopOrder] = Tally()
        self.closes = Closes()
        self.order_selection: Selection | None = None
        self.position_selection: Selection | None = None
        self.passes = 0
        self.error: FrontOfficeError | None = None

    async def go(self) -> None:
        """Run the rounds; an error of the account's (a 403, a hub that refuses) stops it."""
        try:
            self.ops.check()
            await self._rounds()
        except FrontOfficeError as error:
            self.error = self.error or lighten(error)  # the first error says why it stopped
        except Exception as exc:  # a bug of ours: this account's error, never the others'
            logger.exception("flatten of account %s failed", self.ops.account_id)
            failure = FrontOfficeError(f"flatten of this account failed: {type(exc).__name__}")
            failure.__cause__ = exc
            self.error = self.error or failure
        if self.error is not None and self.stop_ids and not self.plan.dry_run:
            await self._stop_orders_after(self.error)

    async def _stop_orders_after(self, error: FrontOfficeError) -> None:
        """The account stopped: still cancel the stop orders given (they need no snapshot)
        unless the error says a request would fail the same way; name what was not tried."""
        if not is_fatal(error) and not isinstance(error, ClientClosedError):
            with contextlib.suppress(FrontOfficeError):  # what it raises is the account's
                await self._cancel_stop_orders()
        untried = [i for i in self.stop_ids if i not in self.stops.merged]
        if untried:
            outcomes = [CancelOutcome[StopOrder](i, error=error) for i in untried]
            self.stops.add(BulkCancelResult(outcomes, stopped_by=error))

    async def _rounds(self) -> None:
        plan = self.plan
        while True:
            acting = not plan.dry_run and self.passes < plan.rounds
            if not await self._round(acting):
                return  # this round's snapshots found nothing to do: they are the verdict
            self.passes += 1
            if self.journal is not None:
                self._journal_round()
            if self._stopped():
                return

    def _stopped(self) -> bool:
        """Whether an error of the account's (a 403, a revoked token) stopped it."""
        return self.error is not None

    async def _round(self, acting: bool) -> bool:
        """Read both snapshots at once; when `acting`, do the round's work as early as it can
        start: the stop-order cancels at once (they need no snapshot), the order cancels and
        the closes on the first item that shows something. Whether anything was sent.

        When the positions cannot be read, the orders' pass goes on to its end (an emergency
        keeps cancelling); when a snapshot fails, what was sent finishes and is kept before its
        error is raised. Nothing of the round outlives this call, and a cancelled caller stops
        it all at once.
        """
        ops, plan = self.ops, self.plan
        feed = Feed(self.orders.failed, plan.market_id, None)
        closer = Closer(ops, plan.market_id, self.closes) if acting else None
        orders: asyncio.Future[Any]
        if acting:
            read = run_pass(ops.orders_snapshot, ops.cancel_orders, feed, keep=self.orders.add)
            orders = asyncio.ensure_future(read)
        else:
            orders = asyncio.ensure_future(ops.orders_snapshot(None))
        positions = asyncio.ensure_future(self._positions_snapshot(closer))
        stops = None
        if acting and self.stop_ids:
            stops = asyncio.ensure_future(self._cancel_stop_orders())
        try:
            await self._read(orders, positions)
            if closer is not None:
                closer.stop()  # the snapshot is over: no close starts after this
            if work := _running(stops, closer):
                await asyncio.wait(work)  # what was sent finishes, whatever the snapshots did
        finally:
            if closer is not None:
                closer.stop()
            await _stop_all(orders, positions, *_running(stops, closer))
        # The orders' pass is kept even when the positions' snapshot failed (when its own
        # failed, run_pass kept it); the closes and stop-order cancels keep theirs as they end.
        cancelled = acting and self._keep_pass(orders, feed)
        self.error = self.error or self.closes.stopped_by  # a refused close stops the account
        _raise_first(orders, positions, *_running(stops, closer))
        if closer is None:  # snapshots only
            self._saw(orders.result(), positions.result())
            return False
        self._saw(orders.result()[1], positions.result())
        return self._acted(stops, closer) or cancelled

    async def _read(self, orders: asyncio.Future[Any], positions: asyncio.Future[Any]) -> None:
        """Wait for both snapshots; when one fails, stop the other, but let the orders' pass
        end first when only the positions failed."""
        await asyncio.wait([orders, positions], return_when=asyncio.FIRST_EXCEPTION)
        if _failed(positions) and not orders.done():
            await asyncio.wait([orders])
        await _stop_all(orders, positions)

    def _keep_pass(self, orders: asyncio.Future[Any], feed: Feed) -> bool:
        """Keep what the orders' pass did, if it ended; whether it sent any cancel."""
        if not feed.count or not _succeeded(orders):
            return False
        result, _ = orders.result()
        self.orders.add(result)
        self.error = self.error or self.orders.stopped_by
        return True

    def _acted(self, stops: asyncio.Future[bool] | None, closer: Closer) -> bool:
        """Whether the round cancelled stop orders or closed positions."""
        return (stops is not None and stops.result()) or closer.fired

    async def _positions_snapshot(self, closer: Closer | None) -> list[Any] | None:
        if not self.plan.close_positions:
            return None
        return await self.ops.positions_snapshot(None if closer is None else closer.on_item)

    def _saw(self, records: list[Any], positions: list[Any] | None) -> None:
        market_id, secrets = self.plan.market_id, self.ops.secrets
        self.order_selection = self.orders.saw(select(records, market_id, None, secrets=secrets))
        if positions is not None:
            self.position_selection = select(
                positions, market_id, None, key="positionId", secrets=secrets
            )

    async def _cancel_stop_orders(self) -> bool:
        """Cancel the stop orders given that are not final yet; whether any was sent."""
        merged = self.stops.merged
        pending = [i for i in self.stop_ids if i not in merged or merged[i].failed]
        if not pending:
            return False
        self.stops.add(await self.ops.cancel_stop_orders(pending))
        self.error = self.error or self.stops.stopped_by  # never erase what stopped it
        return True

    def _journal_round(self) -> None:
        assert self.journal is not None
        self.journal.event(
            "round",
            account=self.ops.account_id,
            round=self.passes,
            orders_cancelled=len(self.orders.merged),
            stop_orders=len(self.stops.merged),
            positions_accepted=len(self.closes.accepted),
            close_requests=self.closes.requests,
        )

    def result(self) -> AccountFlatten:
        """What the rounds did, and what the last snapshots showed."""
        stop_orders = self.stops.result(None)
        return AccountFlatten(
            account_id=self.ops.account_id,
            orders=self.orders.result(self.order_selection),
            stop_orders=BulkCancelResult(
                stop_orders,
                elapsed=stop_orders.elapsed,
                rounds=stop_orders.rounds,
                attempts=stop_orders.attempts,
                stopped_by=stop_orders.stopped_by,
                # Every id given ended final: one without an outcome (a dry run) may be live.
                verified=not stop_orders.failed
                and all(i in self.stops.merged for i in self.stop_ids),
            ),
            rounds=self.passes,
            positions=self.closes.result(
                self.position_selection,
                checked=self.plan.close_positions,
                stopped=self.error is not None,
            ),
            error=self.error,
        )


def _failed(task: asyncio.Future[Any]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


def _succeeded(task: asyncio.Future[Any]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


def _raise_first(*tasks: asyncio.Future[Any]) -> None:
    """Raise the error of the first task that failed, in the order given."""
    for task in tasks:
        error = task.exception() if _failed(task) else None
        if error is not None:
            raise error


def _running(
    stops: asyncio.Future[Any] | None, closer: Closer | None
) -> list[asyncio.Future[Any]]:
    """The round's work that was started: its stop-order cancels, its closes."""
    work = None if closer is None else closer.work
    return [task for task in (stops, work) if task is not None]


async def _stop_all(*tasks: asyncio.Future[Any]) -> None:
    """Cancel what still runs and wait for it (its outcome is dropped: an error is raised
    already, or the caller was cancelled)."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: asyncio does not report it
