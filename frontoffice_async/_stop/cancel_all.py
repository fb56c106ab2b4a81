"""Cancel-all, verified: the one home of "snapshot, select, cancel, check again".

`FrontOfficeClient.cancel_all_orders` (and through it the CLI and the demo) runs `cancel_all`:
snapshot, cancel what matches, snapshot again and cancel what still matches (and what failed),
up to `rounds` passes; the last snapshot says what is left. Reading a snapshot is tolerant here:
a cancel needs only an order id, so one malformed record must not stop the others.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs

from .. import _converter
from .._http import answers
from .._http.checks import check_rounds
from ..bulk import BulkCancelResult, CancelOutcome
from ..errors import ResponseValidationError
from ..models import OpenOrder, Order, OrderSide

__all__ = ["Selection", "cancel_all", "select"]

#: Characters of an unreadable record kept on the result.
_RAW_KEPT = 500

Snapshot = Callable[[], Awaitable[list[Any]]]
CancelIds = Callable[[Sequence[str]], Awaitable[BulkCancelResult[Order]]]


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

    def typed(self) -> tuple[list[OpenOrder], list[str]]:
        """The matching records as `OpenOrder`s, and (clipped) those that do not read as one.

        Done only for what must be shown: typing thousands of records costs milliseconds.
        """
        orders: list[OpenOrder] = []
        unreadable = list(self.unreadable)
        for raw in self.records:
            try:
                orders.append(_converter.structure(raw, OpenOrder, path="item"))
            except ResponseValidationError:
                unreadable.append(_clipped(raw))
        return orders, unreadable


def select(records: Sequence[Any], market_id: str | None, side: OrderSide | None) -> Selection:
    """The matching orders of a raw snapshot, each id once; what cannot be read is reported."""
    ids: dict[str, dict[str, Any]] = {}
    unreadable: list[str] = []
    filtered_out: Counter[str] = Counter()
    for raw in records:
        order_id = raw.get("orderId") if isinstance(raw, dict) else None
        if not isinstance(order_id, str) or not order_id.strip():
            unreadable.append(_clipped(raw))
            continue
        match = _matches(raw, market_id, side)
        if match is None:  # a filter field that cannot be read: cannot tell, so say so
            unreadable.append(_clipped(raw))
            continue
        if not match:
            market = raw.get("marketId")
            filtered_out[market if isinstance(market, str) else "?"] += 1
            continue
        if order_id in ids:
            continue  # listed twice: cancelled once
        ids[order_id] = raw
    return Selection(tuple(ids), tuple(ids.values()), tuple(unreadable), dict(filtered_out))


async def cancel_all(
    snapshot: Snapshot,
    cancel: CancelIds,
    *,
    market_id: str | None,
    side: OrderSide | None,
    rounds: int,
    dry_run: bool = False,
) -> BulkCancelResult[Order]:
    """Cancel what the snapshots show, up to `rounds` passes; see `cancel_all_orders`."""
    check_rounds(rounds)
    started = time.perf_counter()
    selection = select(await snapshot(), market_id, side)
    filtered_out = selection.filtered_out
    merged: dict[str, CancelOutcome[Order]] = {}
    passes = attempts = 0
    pending = selection.ids
    stopped_by = None
    while not dry_run and pending and passes < rounds and stopped_by is None:
        passes += 1
        failed: list[str] = []
        result = await cancel(pending)
        attempts += result.attempts
        stopped_by = result.stopped_by
        for outcome in result:
            earlier = merged.get(outcome.order_id)
            # "Cancelled" by any round wins; otherwise the latest round says what happened.
            if earlier is None or not earlier.ok:
                merged[outcome.order_id] = outcome
            if outcome.failed:
                failed.append(outcome.order_id)
        if stopped_by is not None:
            # A revoked token or a forbidden account: another round would only send the same
            # refused requests again. What this round tried is what may still be open.
            break
        selection = select(await snapshot(), market_id, side)
        # What still matches, and what failed even if the hub no longer lists it: a lost
        # answer's order then comes back "not active" instead of staying a false failure.
        pending = tuple(dict.fromkeys((*selection.ids, *failed)))
    remaining, unreadable = selection.typed()
    return BulkCancelResult(
        merged.values(),
        elapsed=time.perf_counter() - started,
        rounds=passes,
        remaining=remaining,
        unreadable=unreadable,
        # A dry run that selects nothing has verified the account as well as any run could.
        verified=not selection.ids and not unreadable and stopped_by is None,
        filtered_out=filtered_out,
        attempts=attempts,
        stopped_by=stopped_by,
    )


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


def _clipped(raw: Any) -> str:
    try:
        text = json.dumps(raw, default=str, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = repr(raw)
    return answers.clip(text, _RAW_KEPT)
