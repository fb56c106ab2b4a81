"""Frozen records of what the API returns, and the open enums they use.

The wire format (camelCase keys, decimal strings, timestamps) lives in `_converter`, not here.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any, Self

import attrs

__all__ = [
    "Account",
    "AccountType",
    "OpenOrder",
    "OpenOrdersEvent",
    "OpenPosition",
    "Order",
    "OrderSide",
    "OrderSource",
    "OrderStatus",
    "OrderType",
    "PositionsCloseAck",
    "PriceTrigger",
    "StopOrder",
    "StopOrderStatus",
    "TimeInForce",
]


class OpenEnum(enum.StrEnum):
    """A str enum that accepts values it does not know.

    The platform adds enum values without notice; a trading client must not fail to parse a
    cancel response because of one. An unknown value becomes a pseudo-member, created once
    per value (so `is` comparisons are stable), equal to its string, with `is_unknown` set.
    """

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        # Registering in the value map makes the next lookup return this same object.
        cls._value2member_map_[value] = member
        return member

    @property
    def is_unknown(self) -> bool:
        """True for a value this version of the library does not know."""
        return self._name_ not in type(self).__members__

    def __repr__(self) -> str:
        if self.is_unknown:
            return f"<{type(self).__name__} unknown {self._value_!r}>"
        return super().__repr__()


class OrderStatus(OpenEnum):
    """Lifecycle state of an order. Active (cancellable) states are Started, Pending, Working."""

    STARTED = "Started"
    PENDING = "Pending"
    WORKING = "Working"
    COMPLETED = "Completed"
    CANCELLED = "Cancelled"
    EXPIRED = "Expired"
    REJECTED = "Rejected"

    @property
    def is_active(self) -> bool:
        """True while the order can still be cancelled."""
        return self in _ACTIVE_STATUSES


_ACTIVE_STATUSES = frozenset({OrderStatus.STARTED, OrderStatus.PENDING, OrderStatus.WORKING})


class OrderSide(OpenEnum):
    """Buy or sell."""

    BUY = "Buy"
    SELL = "Sell"


class OrderType(OpenEnum):
    """How the order executes; stop-limit types may arrive as unknown members."""

    MARKET = "Market"
    LIMIT = "Limit"


class TimeInForce(OpenEnum):
    """How long an order stays on the book."""

    GTC = "Gtc"
    IOC = "Ioc"
    FOK = "Fok"
    GTD = "Gtd"
    DAY = "Day"


class OrderSource(OpenEnum):
    """Who or what placed the order."""

    MANUAL = "Manual"
    STOP_ORDER = "StopOrder"
    FIX_API = "FixApi"
    SYSTEM = "System"


class StopOrderStatus(OpenEnum):
    """State of a stop order; a cancelled one usually comes back as an unknown "Cancelled"."""

    WAITING_FOR_ACTIVATION = "WaitingForActivation"
    ACTIVATED = "Activated"
    REJECTED = "Rejected"
    CANCELLED = "Cancelled"


class AccountType(OpenEnum):
    """How positions are kept on a trading account."""

    HEDGING = "Hedging"
    NETTING = "Netting"


@attrs.frozen(kw_only=True)
class Order:
    """An order as the cancel endpoint returns it.

    Example:
        >>> order = await client.cancel_order("01K2PF9XS29WN4JZRHMCTTQYJB")
        >>> order.status, order.remaining_amount
        (<OrderStatus.CANCELLED: 'Cancelled'>, Decimal('0.1'))
    """

    market_id: str
    market_display_name: str
    order_id: str
    order_type: OrderType
    side: OrderSide
    status: OrderStatus
    source: OrderSource
    time_in_force: TimeInForce
    commission: Decimal
    requested_amount: Decimal
    remaining_amount: Decimal
    requested_price: Decimal | None = None
    execution_price: Decimal
    created_at: datetime
    updated_at: datetime
    reject_details: str | None = None
    cancellation_date: datetime | None = None
    fill_factor: Decimal
    comment: str | None = None
    """Free text up to 100 characters; newer platform versions send it."""

    @property
    def is_active(self) -> bool:
        """True if the status is Started, Pending or Working."""
        return self.status in _ACTIVE_STATUSES

    def as_dict(self) -> dict[str, Any]:
        """This record as JSON-ready data: snake_case names, decimals as strings, timestamps
        as ISO-8601 with `Z`, enums as their values (what the CLI's `--json` prints)."""
        return to_plain(self)


@attrs.frozen(kw_only=True)
class StopOrder:
    """A stop order as the stop-order cancel endpoint returns it."""

    market_id: str
    market_display_name: str
    order_id: str
    order_type: OrderType
    side: OrderSide
    requested_price: Decimal | None = None
    activation_price: Decimal
    requested_amount: Decimal
    time_in_force: TimeInForce
    status: StopOrderStatus
    created_at: datetime
    updated_at: datetime
    cancellation_date: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """This record as JSON-ready data: snake_case names, decimals as strings, timestamps
        as ISO-8601 with `Z`, enums as their values (what the CLI's `--json` prints)."""
        return to_plain(self)


@attrs.frozen(kw_only=True)
class PriceTrigger:
    """A take-profit or stop-loss level attached to an open order."""

    price: Decimal
    is_trailing: bool = False

    def as_dict(self) -> dict[str, Any]:
        """This record as JSON-ready data: snake_case names, decimals as strings, timestamps
        as ISO-8601 with `Z`, enums as their values (what the CLI's `--json` prints)."""
        return to_plain(self)


@attrs.frozen(kw_only=True)
class OpenOrder:
    """One item of the OpenOrders stream: an order that is still active."""

    market_id: str
    market_type: str | None = None
    market_display_name: str
    market_full_name: str | None = None
    order_id: str
    time_in_force: TimeInForce
    status: OrderStatus
    source: OrderSource
    reason: str | None = None
    side: OrderSide
    order_type: OrderType
    requested_amount: Decimal
    remaining_amount: Decimal
    requested_price: Decimal | None = None
    execution_price: Decimal
    created_at: datetime
    updated_at: datetime
    cancellation_date: datetime | None = None
    commission_asset_id: str | None = None
    commission_amount: Decimal | None = None
    leverage: Decimal | None = None
    fill_factor: Decimal
    take_profit: PriceTrigger | None = None
    stop_loss: PriceTrigger | None = None

    @property
    def is_active(self) -> bool:
        """True if the status is Started, Pending or Working."""
        return self.status in _ACTIVE_STATUSES

    def as_dict(self) -> dict[str, Any]:
        """This record as JSON-ready data: snake_case names, decimals as strings, timestamps
        as ISO-8601 with `Z`, enums as their values (what the CLI's `--json` prints)."""
        return to_plain(self)


@attrs.frozen
class OpenOrdersEvent:
    """One item of the OpenOrders stream: the snapshot, or an update.

    The first event of a connection (and of every reconnection) is the snapshot of every
    open order (`is_snapshot`); later events carry the orders that changed, with their new
    status (an order that is no longer active has left the book).
    """

    is_snapshot: bool
    orders: tuple[OpenOrder, ...]


@attrs.frozen(kw_only=True)
class OpenPosition:
    """One item of the OpenPositions stream: a position still open on a CFD or Perpetual
    market. `position_lot_amount` is in lots; the `*_in_rat` amounts are in the account's
    reporting currency."""

    position_id: str
    market_id: str
    market_type: str | None = None
    market_display_name: str
    market_full_name: str | None = None
    side: OrderSide
    status: str | None = None
    """The platform's own word for it ("Always Open" while open)."""
    leverage: Decimal | None = None
    """CFD positions only."""
    position_lot_amount: Decimal
    open_price: Decimal
    current_market_price: Decimal
    used_margin_in_rat: Decimal | None = None
    unrealized_pnl_total_in_rat: Decimal | None = None
    created_at: datetime
    updated_at: datetime
    take_profit: PriceTrigger | None = None
    stop_loss: PriceTrigger | None = None

    def as_dict(self) -> dict[str, Any]:
        """This record as JSON-ready data: snake_case names, decimals as strings, timestamps
        as ISO-8601 with `Z`, enums as their values (what the CLI's `--json` prints)."""
        return to_plain(self)


@attrs.frozen(kw_only=True)
class PositionsCloseAck:
    """The platform's answer to a bulk close: it took these positions to close.

    An acknowledgement, not proof: only a later OpenPositions snapshot shows them gone.
    """

    status: str
    """What the platform said, e.g. "accepted"."""
    position_ids: tuple[str, ...] = ()
    """The positions it took."""

    def as_dict(self) -> dict[str, Any]:
        """This record as JSON-ready data (what the CLI's `--json` prints)."""
        return to_plain(self)


@attrs.frozen(kw_only=True)
class Account:
    """A trading account the token can act on."""

    account_id: str
    account_name: str
    account_type: AccountType
    total_balance_in_rat: Decimal
    is_copy_trading_account: bool
    public_account_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """This record as JSON-ready data: snake_case names, decimals as strings, timestamps
        as ISO-8601 with `Z`, enums as their values (what the CLI's `--json` prints)."""
        return to_plain(self)


def to_plain(record: Any) -> dict[str, Any]:
    """A record as JSON-ready data: snake_case names (not the wire's camelCase), decimals as
    strings, timestamps as ISO-8601 with `Z`, enums as their values; nested records too."""
    names = _NAMES.get(type(record))
    if names is None:
        names = _NAMES[type(record)] = tuple(f.name for f in attrs.fields(type(record)))
    # What attrs.asdict(record, value_serializer=...) gives, without its per-field generality:
    # a journal's summary turns every order of a run into this (tests check both agree).
    return {name: _plain(getattr(record, name)) for name in names}


#: The field names of each record class, in order (built on first use).
_NAMES: dict[type, tuple[str, ...]] = {}
#: Values that are already JSON-ready, the usual case (checked by exact type first).
_AS_IS: frozenset[type] = frozenset({str, int, bool, float, type(None)})


def _plain(value: Any) -> Any:
    if type(value) in _AS_IS:
        return value
    if isinstance(value, Decimal | enum.Enum):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if attrs.has(type(value)):
        return to_plain(value)
    if isinstance(value, list | tuple):  # kept a tuple, as `attrs.asdict` keeps it
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value
