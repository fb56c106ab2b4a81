"""The simulator's order book: orders and stop orders, their wire shapes, and change events."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import attrs

from frontoffice_async.testing import _wire

__all__ = [
    "ACTIVE_ORDER_STATUSES",
    "ACTIVE_STOP_STATUSES",
    "OrderBook",
    "OrderKind",
    "SimulatedOrder",
]

OrderKind = Literal["order", "stop"]

#: Statuses in which an order can still be cancelled.
ACTIVE_ORDER_STATUSES = frozenset({"Started", "Pending", "Working"})
#: Statuses in which a stop order can still be cancelled.
ACTIVE_STOP_STATUSES = frozenset({"WaitingForActivation", "Activated"})

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Id time parts count milliseconds from this instant (2025-08-15T08:59:51.970Z), one per
# id, so ids sort in creation order and do not depend on the wall clock.
_ID_EPOCH_MS = 1_755_248_391_970
_COMMISSION_RATE = Decimal("0.001")


def _now() -> datetime:
    return datetime.now(UTC)


def _optional_decimal(value: Decimal | None) -> str | None:
    return None if value is None else _wire.format_decimal(value)


def _optional_timestamp(value: datetime | None) -> str | None:
    return None if value is None else _wire.format_timestamp(value)


@attrs.define(kw_only=True)
class SimulatedOrder:
    """An order (`kind="order"`) or stop order (`kind="stop"`) held by the simulator.

    Mutable on purpose: a test may change a field directly (`order.status = "Completed"`),
    though only `FrontOfficeSimulator.update_order` tells the OpenOrders hub about it.
    Status and other enum-like fields are the platform's PascalCase strings.
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


OrderListener = Callable[[SimulatedOrder], None]


class OrderBook:
    """All orders of all accounts, with deterministic ids and per-account change listeners.

    Only plain orders are announced to listeners: stop orders are not OpenOrders items.
    """

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._id_count = 0
        self._orders: dict[str, SimulatedOrder] = {}
        self._listeners: dict[str, list[OrderListener]] = {}

    @property
    def orders(self) -> Mapping[str, SimulatedOrder]:
        """Every order, by id, in creation order."""
        return self._orders

    def new_id(self) -> str:
        """A fresh 26-character ULID-like id, the same sequence for the same seed."""
        while True:
            n = self._id_count
            self._id_count += 1
            digest = hashlib.sha256(f"order-id:{self._seed}:{n}".encode()).digest()
            order_id = _crockford(_ID_EPOCH_MS + n, 10) + _crockford(
                int.from_bytes(digest[:10], "big"), 16
            )
            if order_id not in self._orders:
                return order_id

    def create(
        self,
        ids: Iterable[str],
        *,
        kind: OrderKind,
        account_id: str,
        market_id: str,
        side: str | None,
        status: str,
    ) -> list[SimulatedOrder]:
        """Add resting limit orders (or stop orders) with believable prices."""
        reference = _wire.reference_price(market_id)
        created: list[SimulatedOrder] = []
        for index, order_id in enumerate(ids):
            if order_id in self._orders:
                raise ValueError(f"order id {order_id!r} already exists")
            order_side = side if side is not None else ("Buy", "Sell")[index % 2]
            step = Decimal(index % 5 + 1) / 100
            # Resting orders sit away from the market: bids below, asks above.
            away = (1 - step) if order_side == "Buy" else (1 + step)
            now = _now()
            order = SimulatedOrder(
                order_id=order_id,
                account_id=account_id,
                kind=kind,
                market_id=market_id,
                market_display_name=_wire.market_display_name(market_id),
                side=order_side,
                status=status,
                requested_amount=Decimal("0.05") if kind == "stop" else Decimal("0.1"),
                remaining_amount=Decimal("0.05") if kind == "stop" else Decimal("0.1"),
                requested_price=reference if kind == "stop" else (reference * away).normalize(),
                activation_price=(reference * (2 - away)).normalize() if kind == "stop" else None,
                created_at=now,
                updated_at=now,
            )
            if kind == "order" and status == "Completed":
                _fill(order, order.requested_price or reference)
            self._orders[order_id] = order
            created.append(order)
            self._announce(order)
        return created

    def place(
        self,
        *,
        account_id: str,
        market_id: str,
        side: str,
        order_type: str,
        time_in_force: str,
        requested_amount: Decimal,
        requested_price: Decimal | None,
    ) -> SimulatedOrder:
        """A new order from the place-order endpoint: Limit rests, Market fills at once."""
        now = _now()
        order = SimulatedOrder(
            order_id=self.new_id(),
            account_id=account_id,
            market_id=market_id,
            market_display_name=_wire.market_display_name(market_id),
            side=side,
            order_type=order_type,
            time_in_force=time_in_force,
            status="Pending",
            requested_amount=requested_amount,
            remaining_amount=requested_amount,
            requested_price=requested_price,
            created_at=now,
            updated_at=now,
        )
        if order_type == "Market":
            _fill(order, _wire.reference_price(market_id))
        self._orders[order.order_id] = order
        self._announce(order)
        return order

    def find(self, order_id: str, *, account_id: str, kind: OrderKind) -> SimulatedOrder | None:
        """The order a cancel request names, or None where the platform would answer 404."""
        order = self._orders.get(order_id)
        if order is None or order.account_id != account_id or order.kind != kind:
            return None
        return order

    def cancel(self, order: SimulatedOrder) -> None:
        """Mark an active order cancelled now."""
        now = _now()
        order.status = "Cancelled"
        order.updated_at = now
        order.cancellation_date = now
        self._announce(order)

    def update(self, order_id: str, changes: Mapping[str, Any]) -> SimulatedOrder:
        """Change fields of an order, bump `updated_at` and tell the listeners."""
        order = self._orders[order_id]
        for name in changes:
            if name not in attrs.fields_dict(SimulatedOrder) or name in ("order_id", "kind"):
                raise TypeError(f"update_order() cannot change {name!r}")
        for name, value in changes.items():
            setattr(order, name, value)
        if "updated_at" not in changes:
            order.updated_at = _now()
        self._announce(order)
        return order

    def open_orders(self, account_id: str | None = None) -> list[SimulatedOrder]:
        """Active plain orders, of one account or of all, in creation order."""
        return [
            order
            for order in self._orders.values()
            if order.kind == "order"
            and order.is_active
            and (account_id is None or order.account_id == account_id)
        ]

    def subscribe(self, account_id: str, listener: OrderListener) -> Callable[[], None]:
        """Call `listener` on every later change of a plain order of `account_id`.

        Returns the function that unsubscribes it.
        """
        listeners = self._listeners.setdefault(account_id, [])
        listeners.append(listener)

        def unsubscribe() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return unsubscribe

    def _announce(self, order: SimulatedOrder) -> None:
        if order.kind != "order":
            return
        # A copy: a listener may unsubscribe while we iterate.
        for listener in list(self._listeners.get(order.account_id, ())):
            listener(order)


def _fill(order: SimulatedOrder, price: Decimal) -> None:
    order.status = "Completed"
    order.remaining_amount = Decimal(0)
    order.fill_factor = Decimal(1)
    order.execution_price = price
    order.commission = (order.requested_amount * price * _COMMISSION_RATE).normalize()


def _crockford(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(reversed(chars))
