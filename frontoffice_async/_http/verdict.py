"""What a 2xx answer to a cancel means: cancelled, final already, or not confirmed.

A 2xx is not proof of a cancel: the platform returns the order as it is, and it may have
filled before the cancel arrived, or still be working. `is_cancelled` reads the record the
answer carried; `not_cancelled` builds the error for anything else (pure functions: no I/O).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from ..errors import (
    CancelNotConfirmedError,
    FrontOfficeError,
    OrderNotActiveError,
    ResponseValidationError,
)
from ..models import Order, OrderStatus, StopOrder, StopOrderStatus
from .answers import one_line

__all__ = ["is_cancelled", "not_cancelled"]

#: Statuses that mean "cancelled" (the order will never trade), per record type.
_CANCELLED: Final[dict[type, frozenset[str]]] = {
    Order: frozenset({OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED}),
    StopOrder: frozenset({StopOrderStatus.CANCELLED, StopOrderStatus.REJECTED}),
}
#: Statuses that mean "not cancelled, and not active either": the order filled before the
#: cancel arrived, or the stop order activated (it became a live order of its own).
_FINAL: Final[dict[type, frozenset[str]]] = {
    Order: frozenset({OrderStatus.COMPLETED}),
    StopOrder: frozenset({StopOrderStatus.ACTIVATED}),
}
_WHY: Final[dict[str, str]] = {
    OrderStatus.COMPLETED: "the order was filled before the cancel arrived",
    StopOrderStatus.ACTIVATED: "the stop order was activated before the cancel arrived "
    "(the order it placed is live: cancel that one)",
}


def is_cancelled(record: Order | StopOrder, order_id: str) -> bool:
    """True when the 2xx `record` is `order_id`, cancelled (or expired, or rejected)."""
    return record.order_id == order_id and record.status in _CANCELLED[type(record)]


def not_cancelled(
    record: Order | StopOrder,
    order_id: str,
    *,
    status: int,
    url: str,
    attempts: int,
    secrets: Collection[str] = (),
) -> FrontOfficeError:
    """The error of a 2xx `record` that `is_cancelled` refused:

    - another order's id: `ResponseValidationError` (a failure);
    - `Completed` (or a stop order `Activated`): `OrderNotActiveError` carrying the record;
    - an active status, or one this version does not know: `CancelNotConfirmedError`.
    """
    state = record.status
    if record.order_id != order_id:
        other = one_line(record.order_id, 80, secrets)
        return ResponseValidationError(
            f"the answer is about another order ({other!r}), not the one cancelled",
            url=url,
            path="order.orderId",
            attempts=attempts,
        )
    if state in _FINAL[type(record)]:
        return OrderNotActiveError(
            f"{_WHY[state]} (status {state})",
            order_id=order_id,
            order=record,
            status=status,
            method="DELETE",
            url=url,
            attempts=attempts,
        )
    shown = one_line(state, 40, secrets)
    unknown = " (a status this version does not know)" if state.is_unknown else ""
    return CancelNotConfirmedError(
        f"the order is still {shown}{unknown} after the cancel: it may be live",
        order_id=order_id,
        order=record,
        url=url,
        attempts=attempts,
    )
