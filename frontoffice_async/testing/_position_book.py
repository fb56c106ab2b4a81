"""The simulator's positions: every account's, with deterministic ids and change events."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from frontoffice_async.testing import _wire
from frontoffice_async.testing._position import CLOSED, SimulatedPosition
from frontoffice_async.testing._ulid import IdSequence

__all__ = ["CLOSE_MODES", "PositionBook", "PositionListener"]

#: The `mode` values of a bulk close, and which open positions each one closes.
CLOSE_MODES: Mapping[str, Callable[[SimulatedPosition], bool]] = {
    "AllPositions": lambda position: True,
    "PositivePnl": lambda position: position.unrealized_pnl > 0,
    "NegativePnl": lambda position: position.unrealized_pnl < 0,
}

#: Called with the positions one change touched (a bulk close touches several at once).
PositionListener = Callable[[Sequence[SimulatedPosition]], None]


def _now() -> datetime:
    return datetime.now(UTC)


class PositionBook:
    """All positions of all accounts, and per-account listeners of their changes."""

    def __init__(self, seed: int) -> None:
        self._ids = IdSequence(seed, "position-id")
        self._positions: dict[str, SimulatedPosition] = {}
        self._listeners: dict[str, list[PositionListener]] = {}

    @property
    def positions(self) -> Mapping[str, SimulatedPosition]:
        """Every position, open or closed, by id, in creation order."""
        return self._positions

    def new_id(self) -> str:
        """A fresh 26-character ULID-like id, the same sequence for the same seed."""
        return self._ids.next(self._positions)

    def create(
        self,
        ids: Iterable[str],
        *,
        account_id: str,
        market_id: str,
        side: str | None,
        lot_amount: Decimal,
    ) -> list[SimulatedPosition]:
        """Open positions, opened a little below the current price: Buy positions are in
        profit, Sell positions at a loss. An id that exists already is a ValueError, and
        then none is added."""
        ids = list(ids)
        taken = [position_id for position_id in ids if position_id in self._positions]
        if taken:
            raise ValueError(f"position id {taken[0]!r} already exists")
        price = _wire.reference_price(market_id)
        is_cfd = market_id.lower().startswith("cfd.")
        created = []
        for index, position_id in enumerate(ids):
            step = Decimal(index % 5 + 1) / 100
            now = _now()
            position = SimulatedPosition(
                position_id=position_id,
                account_id=account_id,
                market_id=market_id,
                market_display_name=_wire.market_display_name(market_id),
                side=side if side is not None else ("Buy", "Sell")[index % 2],
                leverage=_wire.market_leverage(market_id) if is_cfd else None,
                position_lot_amount=lot_amount,
                open_price=(price * (1 - step)).normalize(),
                current_market_price=price,
                created_at=now,
                updated_at=now,
            )
            self._positions[position_id] = position
            created.append(position)
        self._announce(account_id, created)
        return created

    def find(self, position_id: str, *, account_id: str) -> SimulatedPosition | None:
        """The open position a close request names, or None where the platform answers 404
        (unknown, closed already, or of another account)."""
        position = self._positions.get(position_id)
        if position is None or position.account_id != account_id or not position.is_open:
            return None
        return position

    def open_positions(
        self, account_id: str | None = None, *, mode: str = "AllPositions"
    ) -> list[SimulatedPosition]:
        """Open positions of one account (or of all) that `mode` selects, in creation order."""
        selects = CLOSE_MODES[mode]
        return [
            position
            for position in self._positions.values()
            if position.is_open
            and (account_id is None or position.account_id == account_id)
            and selects(position)
        ]

    def close(self, positions: Sequence[SimulatedPosition], lots: Decimal | None = None) -> None:
        """Close `positions` of one account now (or only `lots` of a single one) and tell
        the listeners once, with every position that changed."""
        if not positions:
            return
        now = _now()
        for position in positions:
            remaining = Decimal(0) if lots is None else position.position_lot_amount - lots
            position.position_lot_amount = remaining
            position.updated_at = now
            if remaining <= 0:
                position.position_lot_amount = Decimal(0)
                position.status = CLOSED
        self._announce(positions[0].account_id, positions)

    def subscribe(self, account_id: str, listener: PositionListener) -> Callable[[], None]:
        """Call `listener` on every later change of positions of `account_id`.

        Returns the function that unsubscribes it.
        """
        listeners = self._listeners.setdefault(account_id, [])
        listeners.append(listener)

        def unsubscribe() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return unsubscribe

    def _announce(self, account_id: str, positions: Sequence[SimulatedPosition]) -> None:
        if not positions:
            return
        # A copy: a listener may unsubscribe while we iterate.
        for listener in list(self._listeners.get(account_id, ())):
            listener(positions)
