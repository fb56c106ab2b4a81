"""Cancel-all, verified: the one home of "snapshot, select, cancel, check again".

`FrontOfficeClient.cancel_all_orders` (and through it the CLI and the demo) runs `cancel_all`:
snapshot, cancel what matches, snapshot again and cancel what still matches (and what failed),
up to `rounds` passes; the last snapshot says what is left. A pass starts cancelling on the
snapshot's first item, and the ids of later items of its settle window join it: the window
delays only the verdict. Reading a snapshot is tolerant here: a cancel needs only an order id,
so one malformed record must not stop the others.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Iterable,
    Sequence,
)
from typing import Any, Generic, TypeVar

import attrs

from .. import _converter
from .._http import answers
from .._http.checks import check_rounds
from .._hub.protocol import OPEN_ORDERS
from ..bulk import BulkCancelResult, CancelOutcome
from ..errors import FrontOfficeError, ResponseValidationError
from ..models import OpenOrder, Order, OrderSide

__all__ = ["Feed", "Selection", "Tally", "cancel_all", "run_pass", "select"]

T = TypeVar("T")
R = TypeVar("R")

_final = OPEN_ORDERS.is_closed

#: Characters of an unreadable record kept on the result.
_RAW_KEPT = 500

#: Reads a snapshot (merged over its settle window), handing each item to the callback, if any,
#: as it arrives.
Snapshot = Callable[[Callable[[list[Any]], object] | None], Awaitable[list[Any]]]
#: Cancels the ids of an async iterable with the bulk pool.
CancelIds = Callable[[AsyncIterable[str]], Coroutine[Any, Any, BulkCancelResult[Order]]]


@attrs.frozen
class Selection:
    """What one snapshot shows that a cancel-all must act on."""

    ids: tuple[str, ...]
    """Distinct ids of the matching records, in snapshot order."""
    records: tuple[dict[str, Any], ...]
    """The matching records, one per id, as parsed JSON."""
    unreadable: tuple[str, ...]
    """Records whose id (or a filter's field) cannot be read, as clipped JSON text."""
    filtered_out: dict[str, int]
    """Open orders per market that the filters left out."""
    secrets: Collection[str] = ()
    """Masked in what is kept of a record (a record may quote the token)."""

    def typed(self, cls: type[R]) -> tuple[list[R], list[str]]:
        """The matching records as `cls` records (`OpenOrder`s, or `OpenPosition`s), and
        (clipped) those that do not read as one.

        Done only for what must be shown: typing thousands of records costs milliseconds.
        """
        typed: list[R] = []
        unreadable = list(self.unreadable)
        for raw in self.records:
            try:
                typed.append(_converter.structure(raw, cls, path="item"))
            except ResponseValidationError:
                unreadable.append(_clipped(raw, self.secrets))
        return typed, unreadable


def select(
    records: Sequence[Any],
    market_id: str | None,
    side: OrderSide | None,
    key: str = "orderId",
    secrets: Collection[str] = (),
) -> Selection:
    """The matching records of a raw snapshot (orders; positions with `key="positionId"`),
    each id once; what cannot be read is reported, `secrets` masked."""
    ids: dict[str, dict[str, Any]] = {}
    unreadable: list[str] = []
    filtered_out: Counter[str] = Counter()
    for raw in records:
        order_id = raw.get(key) if isinstance(raw, dict) else None
        if not isinstance(order_id, str) or not order_id.strip():
            unreadable.append(_clipped(raw, secrets))
            continue
        match = _matches(raw, market_id, side)
        if match is None:  # a filter field that cannot be read: cannot tell, so say so
            unreadable.append(_clipped(raw, secrets))
            continue
        if not match:
            market = raw.get("marketId")
            filtered_out[market if isinstance(market, str) else "?"] += 1
            continue
        if order_id in ids:
            continue  # listed twice: cancelled once
        ids[order_id] = raw
    records_kept = tuple(ids.values())
    return Selection(tuple(ids), records_kept, tuple(unreadable), dict(filtered_out), secrets)


async def cancel_all(
    snapshot: Snapshot,
    cancel: CancelIds,
    *,
    market_id: str | None,
    side: OrderSide | None,
    rounds: int,
    dry_run: bool = False,
    secrets: Callable[[], Collection[str]] = tuple,
) -> BulkCancelResult[Order]:
    """Cancel what the snapshots show, up to `rounds` passes; see `cancel_all_orders`.
    The tokens `secrets()` gives (when a snapshot is read) are masked in unreadable records."""
    check_rounds(rounds)
    tally: Tally[Order] = Tally()
    while True:
        if dry_run or tally.passes == rounds or tally.stopped_by is not None:
            # No pass may follow: this snapshot only says what is left.
            records = await snapshot(None)
            selection = tally.saw(select(records, market_id, side, secrets=secrets()))
            break
        # A pass: what failed in the last one, then what the items show as they come.
        feed = Feed(tally.failed, market_id, side)
        result, records = await run_pass(snapshot, cancel, feed)
        selection = tally.saw(select(records, market_id, side, secrets=secrets()))
        if not feed.count:
            break  # nothing matched in the whole window, nothing failed: this snapshot verifies
        tally.add(result)
    return tally.result(selection)


class Tally(Generic[T]):
    """What the passes of one run did: one outcome per id ("cancelled" by any pass wins,
    otherwise the latest pass says what happened), the ids that failed in the last pass (sent
    again in the next one), the requests sent, and why the run stopped sending, if it did."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.merged: dict[str, CancelOutcome[T]] = {}
        self.failed: list[str] = []
        self.passes = 0
        self.attempts = 0
        self.stopped_by: FrontOfficeError | None = None
        self.filtered_out: dict[str, int] | None = None

    def saw(self, selection: Selection) -> Selection:
        """Note a snapshot's selection (the first one says what the filters left out)."""
        if self.filtered_out is None:
            self.filtered_out = selection.filtered_out
        return selection

    def add(self, result: BulkCancelResult[T]) -> None:
        """Count one pass and keep its outcomes."""
        self.passes += 1
        self.attempts += result.attempts
        self.stopped_by = result.stopped_by
        # Sent again next pass even if the hub no longer lists it: a lost answer's order then
        # comes back "not active" instead of staying a false failure.
        self.failed = []
        for outcome in result:
            earlier = self.merged.get(outcome.order_id)
            if earlier is None or not earlier.ok:
                self.merged[outcome.order_id] = outcome
            if outcome.failed:
                self.failed.append(outcome.order_id)

    def result(self, last: Selection | None) -> BulkCancelResult[T]:
        """The run's result; `last` is the last snapshot's selection (None: none was read)."""
        remaining: list[OpenOrder] = []
        unreadable: list[str] = []
        if last is not None:
            remaining, unreadable = last.typed(OpenOrder)
        return BulkCancelResult(
            self.merged.values(),
            elapsed=time.perf_counter() - self.started,
            rounds=self.passes,
            remaining=remaining,
            unreadable=unreadable,
            # A dry run that selects nothing has verified the account as well as any run could.
            verified=last is not None
            and not last.ids
            and not unreadable
            and self.stopped_by is None,
            filtered_out=self.filtered_out or {},
            attempts=self.attempts,
            stopped_by=self.stopped_by,
        )


async def run_pass(
    snapshot: Snapshot,
    cancel: CancelIds,
    feed: Feed,
    keep: Callable[[BulkCancelResult[Order]], object] | None = None,
) -> tuple[BulkCancelResult[Order], list[Any]]:
    """One pass: the pool cancels the feed's ids while the snapshot fills it; the pool's
    result and the snapshot's records. If the snapshot fails, what was sent finishes (its
    outcomes reach `on_outcome`, and its result `keep`) before the snapshot's error
    propagates; a cancelled caller stops the pool too."""
    work = asyncio.ensure_future(cancel(feed))
    try:
        records = await snapshot(feed.add_item)
    except BaseException:
        feed.close()
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            work.cancel()
        try:
            await asyncio.wait([work])
        except asyncio.CancelledError:  # cancelled while the sent cancels finish: stop them
            work.cancel()
            await asyncio.wait([work])
            raise
        if not work.cancelled() and work.exception() is None and keep is not None:
            keep(work.result())  # the cancels that left count, whatever the snapshot did
        raise
    feed.close()
    return await work, records


class Feed(AsyncIterator[str]):
    """The ids of one pass, each once, as the snapshot's items bring them: what the pool
    reads, open until the snapshot's window closes."""

    __slots__ = ("_closed", "_market_id", "_more", "_queue", "_seen", "_side")

    def __init__(
        self, first: Iterable[str], market_id: str | None, side: OrderSide | None
    ) -> None:
        self._queue: deque[str] = deque()
        self._seen: set[str] = set()
        self._more = asyncio.Event()
        self._closed = False
        self._market_id = market_id
        self._side = side
        self.extend(first)

    def add_item(self, records: list[Any]) -> None:
        """Feed what one item of the snapshot shows open that matches the filters (a record
        that says its order is final needs no cancel, nor another round)."""
        still_open = [r for r in records if not (isinstance(r, dict) and _final(r))]
        self.extend(select(still_open, self._market_id, self._side).ids)

    @property
    def count(self) -> int:
        """Distinct ids fed so far."""
        return len(self._seen)

    def extend(self, ids: Iterable[str]) -> None:
        for order_id in ids:
            if order_id not in self._seen:
                self._seen.add(order_id)
                self._queue.append(order_id)
        if self._queue:
            self._more.set()

    def close(self) -> None:
        self._closed = True
        self._more.set()

    async def __anext__(self) -> str:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._more.clear()
            await self._more.wait()
        return self._queue.popleft()


def _matches(raw: dict[str, Any], market_id: str | None, side: OrderSide | None) -> bool | None:
    """Whether the record passes the filters; None when a filter's field cannot be read."""
    if market_id is not None:
        market = raw.get("marketId")
        if not isinstance(market, str):
            return None
        if market != market_id:
            return False
    if side is not None:
        value = raw.get("side")
        if not isinstance(value, str):
            return None
        if value.casefold() != side.value.casefold():
            return False
    return True


def _clipped(raw: Any, secrets: Collection[str]) -> str:
    try:
        text = json.dumps(raw, default=str, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = repr(raw)
    return answers.keep(text, _RAW_KEPT, secrets)  # masked before it is cut
