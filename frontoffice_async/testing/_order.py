"""One simulated order: its fields, checked on every assignment, and its wire shapes.

A bad value (`market_id=123`, `requested_price="abc"`, a timestamp given as a str) raises
where it is set, naming the field, instead of breaking every later hub connection that would
have to write it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import attrs

from frontoffice_async.testing import _fields, _wire
from frontoffice_async.testing._fields import is_text

__all__ = [
    "ACTIVE_ORDER_STATUSES",
    "ACTIVE_STOP_STATUSES",
    "OrderKind",
    "SimulatedOrder",
    "check_field",
    "is_text",
]

OrderKind = Literal["order", "stop"]

#: Statuses in which an order can still be cancelled.
ACTIVE_ORDER_STATUSES = frozenset({"Started", "Pending", "Working"})
#: Statuses in which a stop order can still be cancelled: an Activated one has become an
#: order of its own, so the stop order itself is final.
ACTIVE_STOP_STATUSES = frozenset({"WaitingForActivation"})


def _kind(name: str, value: object) -> str:
    if value not in ("order", "stop"):
        raise ValueError(f"{name} must be 'order' or 'stop', got {value!r}")
    return str(value)


_CHECKS: dict[str, _fields.Check] = {
    **dict.fromkeys(
        (
            "order_id",
            "account_id",
            "market_id",
            "market_display_name",
            "side",
            "order_type",
            "time_in_force",
            "status",
            "source",
            "reason",
        ),
        _fields.text,
    ),
    "kind": _kind,
    **dict.fromkeys(
        ("requested_amount", "remaining_amount", "execution_price", "commission", "fill_factor"),
        _fields.decimal,
    ),
    **dict.fromkeys(("requested_price", "activation_price"), _fields.nullable(_fields.decimal)),
    **dict.fromkeys(("created_at", "updated_at"), _fields.moment),
    "cancellation_date": _fields.nullable(_fields.moment),
}


def check_field(name: str, value: object) -> Any:
    """`value` as field `name` of a `SimulatedOrder` stores it, or TypeError/ValueError.

    Str fields take a non-empty str (any text UTF-8 can carry: an unknown status is allowed
    on purpose);
    amounts and prices a finite Decimal, or an int, float or str converted to one; timestamps
    a datetime, stored in UTC (a naive one is taken as UTC). `requested_price`,
    `activation_price` and `cancellation_date` may also be None.
    """
    return _CHECKS[name](name, value)


def _on_setattr(instance: object, attribute: attrs.Attribute[Any], value: object) -> Any:
    return check_field(attribute.name, value)


def _optional_decimal(value: Decimal | None) -> str | None:
    return None if value is None else _wire.format_decimal(value)


def _optional_timestamp(value: datetime | None) -> str | None:
    return None if value is None else _wire.format_timestamp(value)


@attrs.define(kw_only=True, on_setattr=_on_setattr)
class SimulatedOrder:
    """An order (`kind="order"`) or stop order (`kind="stop"`) held by the simulator.

    Mutable on purpose: a test may change a field directly (`order.status = "Completed"`),
    though only `FrontOfficeSimulator.update_order` tells the OpenOrders hub about it.
    Status and other enum-like fields are the platform's PascalCase strings.

    Every field is checked when it is set, here as in `update_order`: str fields take a
    non-empty str UTF-8 can carry (an unknown status or side is allowed on purpose, to
    test how a client copes); amounts and prices a finite `Decimal` that fits the
    platform's decimal (an `int`, `float` or decimal str is converted); timestamps a
    `datetime`, stored in UTC (a naive one is taken as UTC). `requested_price`,
    `activation_price` and `cancellation_date` may be None. Anything else raises
    TypeError or ValueError naming the field, and the field keeps its value.
    """

    order_id: str
    account_id: str
    kind: OrderKind = "order"
    market_id: str
    market_display_name: str
    side: str
    order_type: str = "Limit"
    time_in_force: str = "Gtc"
    status: str
    requested_amount: Decimal
    remaining_amount: Decimal
    requested_price: Decimal | None
    #: Price that triggers a stop order; None for plain orders.
    activation_price: Decimal | None = None
    execution_price: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    fill_factor: Decimal = Decimal(0)
    created_at: datetime
    updated_at: datetime
    cancellation_date: datetime | None = None
    source: str = "Manual"
    #: Why the order exists: `Trader`, or e.g. `StopOut` for one the platform placed itself.
    reason: str = "Trader"

    def __attrs_post_init__(self) -> None:
        # on_setattr does not run in __init__: check (and convert) every field here.
        for name, check in _CHECKS.items():
            object.__setattr__(self, name, check(name, getattr(self, name)))

    @property
    def is_active(self) -> bool:
        """Whether a cancel request would succeed (Started/Pending/Working for orders,
        WaitingForActivation for stop orders)."""
        active = ACTIVE_STOP_STATUSES if self.kind == "stop" else ACTIVE_ORDER_STATUSES
        return self.status in active

    def to_wire(self) -> dict[str, Any]:
        """The `order` object of a cancel (or place) response, key for key as the platform."""
        if self.kind == "stop":
            return {
                "marketId": self.market_id,
                "marketDisplayName": self.market_display_name,
                "orderId": self.order_id,
                "orderType": self.order_type,
                "side": self.side,
                "requestedPrice": _optional_decimal(self.requested_price),
                "activationPrice": _optional_decimal(self.activation_price),
                "requestedAmount": _wire.format_decimal(self.requested_amount),
                "timeInForce": self.time_in_force,
                "status": self.status,
                "createdAt": _wire.format_timestamp(self.created_at),
                "updatedAt": _wire.format_timestamp(self.updated_at),
                "cancellationDate": _optional_timestamp(self.cancellation_date),
            }
        return {
            "marketId": self.market_id,
            "marketDisplayName": self.market_display_name,
            "orderId": self.order_id,
            "orderType": self.order_type,
            "side": self.side,
            "status": self.status,
            "source": self.source,
            "timeInForce": self.time_in_force,
            "commission": _wire.format_decimal(self.commission),
            "requestedAmount": _wire.format_decimal(self.requested_amount),
            "remainingAmount": _wire.format_decimal(self.remaining_amount),
            "requestedPrice": _optional_decimal(self.requested_price),
            "executionPrice": _wire.format_decimal(self.execution_price),
            "createdAt": _wire.format_timestamp(self.created_at),
            "updatedAt": _wire.format_timestamp(self.updated_at),
            "rejectDetails": "",
            "cancellationDate": _optional_timestamp(self.cancellation_date),
            "fillFactor": _wire.format_decimal(self.fill_factor),
        }

    def to_open_order_wire(self) -> dict[str, Any]:
        """The item shape of the OpenOrders hub stream."""
        return {
            "marketId": self.market_id,
            "marketType": _wire.market_type(self.market_id),
            "marketDisplayName": self.market_display_name,
            "marketFullName": _wire.market_full_name(self.market_id),
            "orderId": self.order_id,
            "timeInForce": self.time_in_force,
            "status": self.status,
            "source": self.source,
            "reason": self.reason,
            "side": self.side,
            "orderType": self.order_type,
            "requestedAmount": _wire.format_decimal(self.requested_amount),
            "remainingAmount": _wire.format_decimal(self.remaining_amount),
            "requestedPrice": _optional_decimal(self.requested_price),
            "executionPrice": _wire.format_decimal(self.execution_price),
            "createdAt": _wire.format_timestamp(self.created_at),
            "updatedAt": _wire.format_timestamp(self.updated_at),
            "cancellationDate": _optional_timestamp(self.cancellation_date),
            "commissionAssetId": _wire.market_quote_asset(self.market_id),
            "commissionAmount": _wire.format_decimal(self.commission),
            "leverage": _wire.market_leverage(self.market_id),
            "fillFactor": _wire.format_decimal(self.fill_factor),
            "takeProfit": None,
            "stopLoss": None,
        }
