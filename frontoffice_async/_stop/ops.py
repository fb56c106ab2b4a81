"""What one account's run is made of: the client's snapshots, cancels and closes, bound to the
account, to the run's journal and to its concurrency gate.

Cancel-all and flatten see the request path and the hub only through these callables; the
client builds a `Binder` per call from its view (`ViewCalls`), its hub and its bulk calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any, TypeVar

import attrs

from .._http.endpoints import Canceller, ViewCalls, Watch
from .._hub.protocol import OPEN_ORDERS, OPEN_POSITIONS, StreamKind
from .._hub.reconnect import Hub
from .._hub.snapshot import read_snapshot
from ..bulk import BulkCancelResult
from ..models import Order, PositionsCloseAck, StopOrder
from . import pool
from .journal import Journal, OnOutcome

__all__ = ["AccountOps", "Binder"]

T = TypeVar("T")
Ids = Iterable[str] | AsyncIterable[str]


@attrs.frozen(eq=False)
class Binder:
    """The parts of one call (cancel-all, flatten) that every account shares."""

    calls: ViewCalls
    hub: Hub
    bulk: pool.BulkCalls
    concurrency: int
    snapshot_timeout: float | None
    settle: float | None
    on_outcome: OnOutcome | None = None
    journal: Journal | None = None
    #: Requests in flight, all accounts together (None: each pool's own workers bound them).
    gate: asyncio.Semaphore | None = None

    def account(self, account_id: str) -> AccountOps:
        """The operations of this call on one account."""
        return AccountOps(self, account_id)


class AccountOps:
    """One account's snapshots, cancels and closes, as cancel-all and flatten call them."""

    __slots__ = ("_binder", "_watch", "account_id")

    def __init__(self, binder: Binder, account_id: str) -> None:
        self._binder = binder
        self.account_id = account_id
        journal = binder.journal
        self._watch: Watch | None = None if journal is None else journal.watch(account_id)

    def check(self) -> None:
        """Raise `InvalidAccountIdError` when the account's id cannot be sent (an odd id in
        the platform's own listing stops that account only)."""
        self._binder.calls.account_for(self.account_id)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The tokens the client has used (masked wherever a record is shown)."""
        return self._binder.calls.http.tokens.secrets

    async def orders_snapshot(self, on_item: Callable[[list[Any]], object] | None) -> list[Any]:
        """The OpenOrders snapshot (merged over its settle window); `on_item` sees each item."""
        return await self._snapshot(OPEN_ORDERS, on_item)

    async def positions_snapshot(
        self, on_item: Callable[[list[Any]], object] | None = None
    ) -> list[Any]:
        """The OpenPositions snapshot (merged over its settle window); `on_item` sees each
        item."""
        return await self._snapshot(OPEN_POSITIONS, on_item)

    async def cancel_orders(self, ids: Ids) -> BulkCancelResult[Order]:
        """Cancel orders with the bulk pool (each id is fed once: no de-duplication)."""
        binder = self._binder
        cancel = binder.calls.canceller(
            Order, self.account_id, watch=self._watch, slot=binder.gate
        )
        return await self._pool(cancel, ids, "order")

    async def cancel_stop_orders(self, ids: Ids) -> BulkCancelResult[StopOrder]:
        """Cancel stop orders with the bulk pool."""
        binder = self._binder
        cancel = binder.calls.canceller(
            StopOrder, self.account_id, stop=True, watch=self._watch, slot=binder.gate
        )
        return await self._pool(cancel, ids, "stop_order")

    async def close_all(self) -> tuple[PositionsCloseAck, int]:
        """One bulk close of every position of the account."""
        binder = self._binder
        ack, attempts = await binder.calls.close_all_positions(
            self.account_id, watch=self._watch, slot=binder.gate
        )
        if binder.journal is not None:
            binder.journal.event(
                "bulk_close",
                account=self.account_id,
                status=ack.status,
                accepted=list(ack.position_ids),
            )
        return ack, attempts

    async def close_each(self, ids: Ids) -> BulkCancelResult[str]:
        """Close these positions one by one, with the bulk pool."""
        binder = self._binder
        close = binder.calls.position_closer(self.account_id, watch=self._watch, slot=binder.gate)
        return await self._pool(close, ids, "position")

    async def _snapshot(
        self, kind: StreamKind, on_item: Callable[[list[Any]], object] | None
    ) -> list[Any]:
        binder = self._binder
        calls = binder.calls
        calls.http.holder.get()  # closed or wrong loop: say so before anything else
        journal = binder.journal
        shown: dict[str, None] = {}
        if journal is not None:
            on_item = _noting(shown, kind, on_item)
        records = await read_snapshot(
            binder.hub,
            self.account_id,
            timeout=binder.snapshot_timeout,
            settle=binder.settle,
            kind=kind,
            policy=calls.pipeline.retry.policy,
            headers=calls.base_headers,
            on_item=on_item,
        )
        if journal is not None:
            journal.snapshot(self.account_id, kind.target, list(shown), records, kind.key)
        return records

    async def _pool(self, cancel: Canceller[T], ids: Ids, kind: str) -> BulkCancelResult[T]:
        binder = self._binder
        return await pool.cancel_orders(
            cancel,
            ids,
            concurrency=binder.concurrency,
            on_outcome=self._sink(kind),
            dedupe=False,  # a run feeds each id once
            owner=binder.bulk,
            raise_on_close=False,  # the result keeps what was done; `stopped_by` says why
        )

    def _sink(self, kind: str) -> OnOutcome | None:
        journal, theirs = self._binder.journal, self._binder.on_outcome
        return theirs if journal is None else journal.sink(self.account_id, kind, theirs)


def _noting(
    shown: dict[str, None], kind: StreamKind, on_item: Callable[[list[Any]], object] | None
) -> Callable[[list[Any]], object]:
    """`on_item`, noting first the ids each item shows open: the journal names what was open
    when the window began, which the merged window may no longer show (the run's own work,
    started on the first item, ends them inside it)."""
    key, closed = kind.key, kind.is_closed

    def note(records: list[Any]) -> object:
        for record in records:
            if isinstance(record, dict) and not closed(record):
                record_id = record.get(key)
                if isinstance(record_id, str):
                    shown[record_id] = None
        return None if on_item is None else on_item(records)

    return note
