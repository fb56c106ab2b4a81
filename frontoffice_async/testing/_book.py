"""The simulator's order book: orders and stop orders of every account, and change events."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs

from frontoffice_async.testing import _wire
from frontoffice_async.testing._order import OrderKind, SimulatedOrder, check_field

__all__ = ["OrderBook"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Id time parts count milliseconds from this instant (2025-08-15T08:59:51.970Z), one per
# id, so ids sort in creation order and do not depend on the wall clock.
_ID_EPOCH_MS = 1_755_248_391_970
_COMMISSION_RATE = Decimal("0.001")
# Fields `update_order` never changes, and why.
_FIXED_FIELDS = {
    "order_id": "an order keeps its id",
    "kind": "an order never becomes a stop order, nor the reverse",
    "account_id": (
        "platform orders never move between accounts; add one to the other account with "
        "add_orders(account_id=...)"
    ),
}


def _now() -> datetime:
    return datetime.now(UTC)


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
        """Add resting limit orders (or stop orders) with believable prices.

        An id that already exists is a ValueError, and then none is added.
        """
        ids = list(ids)
        taken = [order_id for order_id in ids if order_id in self._orders]
        if taken:
            raise ValueError(f"order id {taken[0]!r} already exists")
        reference = _wire.reference_price(market_id)
        created: list[SimulatedOrder] = []
        for index, order_id in enumerate(ids):
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
        """Change fields of an order, bump `updated_at` and tell the listeners.

        Every change is checked before any is applied: KeyError for an unknown id, TypeError
        for a field that cannot change, TypeError or ValueError (naming the field) for a bad
        value; then nothing has changed. A new `market_id` brings its display name along
        unless `market_display_name` is given too.
        """
        order = self._orders[order_id]
        fields = attrs.fields_dict(SimulatedOrder)
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name in _FIXED_FIELDS:
                raise TypeError(f"update_order() cannot change {name!r}: {_FIXED_FIELDS[name]}")
            if name not in fields:
                raise TypeError(f"update_order() got an unknown field {name!r}")
            checked[name] = check_field(name, value)
        if "market_id" in checked and "market_display_name" not in checked:
            checked["market_display_name"] = _wire.market_display_name(checked["market_id"])
        checked.setdefault("updated_at", _now())
        for name, value in checked.items():
            setattr(order, name, value)  # checked already: cannot fail half-way
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
