"""Flatten: stop every account asked for, and check that it is stopped.

Per account, round after round: read both snapshots at once (OpenOrders and OpenPositions);
cancel what the orders snapshot shows, as cancel-all does (its cancels start on the first item);
then cancel the stop orders given that are not final yet; then close what the positions
snapshot shows (one bulk close without a market filter; one close per position with one).
Closing a position or a stop-out may create orders, so the next round reads both snapshots
again. An account is done when a round finds nothing to do in either snapshot and every stop
order given is final: those snapshots are its verdict. Accounts run concurrently; one
account's failure never stops another.

A close is a POST, which is not idempotent: it is resent within a round only when it surely
never reached the platform (the retry policy's rule); after an ambiguous loss, the next
round's snapshot decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import attrs

from .._http.answers import lighten
from ..bulk import AccountFlatten, BulkCancelResult, CancelOutcome, FlattenResult, PositionsResult
from ..errors import ClientClosedError, FrontOfficeError
from ..models import OpenPosition, Order, StopOrder
from .cancel_all import Feed, Selection, Tally, run_pass, select
from .journal import Journal
from .ops import AccountOps
from .pool import is_fatal

__all__ = ["Plan", "flatten"]


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
        self.order_selection: Selection | None = None
        self.position_selection: Selection | None = None
        self.accepted: list[str] = []
        self.close_errors: list[FrontOfficeError] = []
        self.close_requests = 0
        self.close_rounds = 0
        self.passes = 0
        self.error: FrontOfficeError | None = None

    async def go(self) -> None:
        """Run the rounds; an error of the account's (a 403, a hub that refuses) stops it."""
        try:
            await self._rounds()
        except FrontOfficeError as error:
            self.error = lighten(error)
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
            did = await self._read_and_cancel(acting)
            if not acting or self._stopped():
                return
            if self.stop_ids and await self._cancel_stop_orders():
                did = True
            if not self._stopped() and self._positions_to_close():
                await self._close_positions()
                did = True
            if not did:
                return  # this round's snapshots found nothing to do: they are the verdict
            self.passes += 1
            if self.journal is not None:
                self._journal_round()
            if self._stopped():
                return

    def _stopped(self) -> bool:
        """Whether an error of the account's (a 403, a revoked token) stopped it."""
        return self.error is not None

    async def _read_and_cancel(self, acting: bool) -> bool:
        """Read both snapshots at once; when `acting`, cancel the orders as their items come
        (with those that failed last round). Whether any cancel was sent.

        When the positions cannot be read, the orders' pass goes on to its end (an emergency
        keeps cancelling); when the orders' snapshot fails, what its cancels did is kept. No
        snapshot outlives this call, and a cancelled caller stops both at once.
        """
        ops, plan = self.ops, self.plan
        feed = Feed(self.orders.failed, plan.market_id, None)
        orders: asyncio.Future[Any]
        if acting:
            read = run_pass(ops.orders_snapshot, ops.cancel_orders, feed, keep=self.orders.add)
            orders = asyncio.ensure_future(read)
        else:
            orders = asyncio.ensure_future(ops.orders_snapshot(None))
        positions = asyncio.ensure_future(self._positions_snapshot())
        try:
            await asyncio.wait([orders, positions], return_when=asyncio.FIRST_EXCEPTION)
            if _failed(positions) and not orders.done():
                await asyncio.wait([orders])
            for task in (orders, positions):
                error = task.exception() if _failed(task) else None
                if error is not None:
                    raise error
        finally:
            await _stop_all(orders, positions)
        if not acting:
            self._saw(orders.result(), positions.result())
            return False
        result, records = orders.result()
        self._saw(records, positions.result())
        if not feed.count:
            return False
        self.orders.add(result)
        self.error = self.error or self.orders.stopped_by
        return True

    async def _positions_snapshot(self) -> list[Any] | None:
        if not self.plan.close_positions:
            return None
        return await self.ops.positions_snapshot()

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

    def _positions_to_close(self) -> bool:
        selection = self.position_selection
        if not self.plan.close_positions or selection is None:
            return False
        # Without a market filter the close is one bulk close, which needs no id: a position
        # whose record cannot be read is closed with the others.
        unreadable = self.plan.market_id is None and bool(selection.unreadable)
        return bool(selection.ids) or unreadable

    async def _close_positions(self) -> None:
        """Close what the positions snapshot showed: one bulk close, or one by one."""
        selection = self.position_selection
        assert selection is not None
        self.close_rounds += 1
        if self.plan.market_id is None:
            try:
                ack, attempts = await self.ops.close_all()
            except FrontOfficeError as error:
                self.close_requests += getattr(error, "attempts", 1)
                self._close_failed(error)
                return
            self.close_requests += attempts
            self.accepted.extend(ack.position_ids)
            return
        result = await self.ops.close_each(selection.ids)
        self.close_requests += result.attempts
        self.accepted.extend(o.order_id for o in result if o.ok)
        for outcome in result.failed:
            assert outcome.error is not None
            self._close_failed(outcome.error)
        self.error = self.error or result.stopped_by

    def _close_failed(self, error: FrontOfficeError) -> None:
        # The next round's snapshot decides whether it closed; a refused account stops.
        self.close_errors.append(lighten(error))
        if is_fatal(error):
            self.error = lighten(error)

    def _journal_round(self) -> None:
        assert self.journal is not None
        self.journal.event(
            "round",
            account=self.ops.account_id,
            round=self.passes,
            orders_cancelled=len(self.orders.merged),
            stop_orders=len(self.stops.merged),
            positions_accepted=len(self.accepted),
            close_requests=self.close_requests,
        )

    def result(self) -> AccountFlatten:
        """What the rounds did, and what the last snapshots showed."""
        positions = self.position_selection
        remaining: list[OpenPosition] = []
        unreadable: list[str] = []
        if positions is not None:
            remaining, unreadable = positions.typed(OpenPosition)
        checked = self.plan.close_positions
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
                verified=not stop_orders.failed,
            ),
            rounds=self.passes,
            positions=PositionsResult(
                accepted=tuple(dict.fromkeys(self.accepted)),
                remaining=remaining,
                unreadable=unreadable,
                errors=self.close_errors,
                requests=self.close_requests,
                rounds=self.close_rounds,
                checked=checked,
                verified=checked
                and positions is not None
                and not positions.ids
                and not unreadable
                and self.error is None,
            ),
            error=self.error,
        )


def _failed(task: asyncio.Future[Any]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


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
