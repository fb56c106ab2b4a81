"""One simulated order: its fields, checked on every assignment, and its wire shapes.

A bad value (`market_id=123`, `requested_price="abc"`, a timestamp given as a str) raises
where it is set, naming the field, instead of breaking every later hub connection that would
have to write it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import attrs

from frontoffice_async.testing import _wire

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
#: Statuses in which a stop order can still be cancelled.
ACTIVE_STOP_STATUSES = frozenset({"WaitingForActivation", "Activated"})

# The largest value of .NET's decimal, which the platform's amounts and prices are; it also
# holds at most 28 decimal places. Nothing beyond can come from the platform, and a value
# such as 1E+999999999 would take gigabytes to write out.
_DOTNET_DECIMAL_MAX = Decimal("79228162514264337593543950335")
_DOTNET_DECIMAL_PLACES = 28


def _text(name: str, value: object) -> str:
    if type(value) is str and value and value.isascii():  # the usual case, first
        return value
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    if not is_text(value):
        raise ValueError(f"{name} {value!r} holds a lone surrogate, which UTF-8 cannot carry")
    return value


def is_text(value: str) -> bool:
    """Whether UTF-8 can carry `value`: not if it holds a lone surrogate (`"\\ud800"`)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind(name: str, value: object) -> str:
    if value not in ("order", "stop"):
        raise ValueError(f"{name} must be 'order' or 'stop', got {value!r}")
    return str(value)


def _decimal(name: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise TypeError(
            f"{name} must be a Decimal (an int, float or decimal str is converted), "
            f"got {type(value).__name__}"
        )
    try:
        # str() of a float is its shortest form: 0.1 becomes Decimal("0.1"), not 0.1000...055.
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{name}: {value!r} is not a decimal number") from None
    if not number.is_finite():
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # finite numbers have an int exponent
    if abs(number) > _DOTNET_DECIMAL_MAX or -exponent > _DOTNET_DECIMAL_PLACES:
        raise ValueError(
            f"{name} {value!r} does not fit the platform's decimal "
            f"(|x| <= {_DOTNET_DECIMAL_MAX}, at most {_DOTNET_DECIMAL_PLACES} decimal places)"
        )
    return number


def _moment(name: str, value: object) -> datetime:
    if type(value) is datetime and value.tzinfo is UTC:  # the usual case, first
        return value
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        return value.replace(tzinfo=UTC)  # naive: taken as UTC, as everywhere in the simulator
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{name} {value!r} is out of range in UTC") from None


def _nullable(check: Callable[[str, object], Any]) -> Callable[[str, object], Any]:
    def nullable(name: str, value: object) -> Any:
        return None if value is None else check(name, value)

    return nullable


_CHECKS: dict[str, Callable[[str, object], Any]] = {
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
        ),
        _text,
    ),
    "kind": _kind,
    **dict.fromkeys(
        ("requested_amount", "remaining_amount", "execution_price", "commission", "fill_factor"),
        _decimal,
    ),
    **dict.fromkeys(("requested_price", "activation_price"), _nullable(_decimal)),
    **dict.fromkeys(("created_at", "updated_at"), _moment),
    "cancellation_date": _nullable(_moment),
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

    def __attrs_post_init__(self) -> None:
        # on_setattr does not run in __init__: check (and convert) every field here.
        for name, check in _CHECKS.items():
            object.__setattr__(self, name, check(name, getattr(self, name)))

    @property
    def is_active(self) -> bool:
        """Whether a cancel request would succeed (Started/Pending/Working for orders,
        WaitingForActivation/Activated for stop orders)."""
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
            "reason": "Trader",
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
