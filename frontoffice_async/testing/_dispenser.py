"""The run-time state of a `FaultPlan`: which fault the next request or hub connection gets."""

from __future__ import annotations

from frontoffice_async.testing._hub_faults import HubFault
from frontoffice_async.testing.faults import Fault, FaultPlan

__all__ = ["FaultDispenser"]


class FaultDispenser:
    """Counts requests per id and endpoint, hub connections and OpenPositions streams, for the
    plan in force."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._per_key: dict[str, int] = {}
        self._sequence_index = 0
        self._hub_connections = 0
        self._positions_streams = 0

    def replace(self, plan: FaultPlan) -> None:
        """Switch to `plan`, starting its scripts, sequence and hub lists from the beginning."""
        self.plan = plan
        self._per_key.clear()
        self._sequence_index = 0
        self._hub_connections = 0
        self._positions_streams = 0

    def next_fault(self, endpoint: str, order_id: str | None) -> Fault | None:
        """The fault for the next request on `endpoint` (naming `order_id`, if any: an order
        id, or the position id of a position close)."""
        plan = self.plan
        if endpoint not in plan.endpoints:
            return None
        # Ids and endpoint names live in one counter map; prefixes keep them apart.
        key = f"id:{order_id}" if order_id is not None else f"endpoint:{endpoint}"
        n = self._per_key.get(key, 0)
        self._per_key[key] = n + 1
        # A request that names no id (a bulk close, a placement) takes its endpoint's script.
        script = plan.scripts.get(order_id if order_id is not None else endpoint)
        if script is not None:
            return script[n] if n < len(script) else None
        index = self._sequence_index
        self._sequence_index += 1
        if index < len(plan.sequence):
            return plan.sequence[index]
        return plan.draw(order_id if order_id is not None else endpoint, n)

    def next_hub_fault(self) -> HubFault | None:
        """The hub fault for the next hub connection: `plan.hub` in turn, then `hub_rates`."""
        n = self._hub_connections
        self._hub_connections += 1
        if n < len(self.plan.hub):
            return self.plan.hub[n]
        return self.plan.draw_hub(n)

    def next_positions_hub_fault(self) -> HubFault | None:
        """The fault for the next connection that invokes OpenPositions: `plan.positions_hub`
        in turn, then `positions_hub_rates`."""
        n = self._positions_streams
        self._positions_streams += 1
        if n < len(self.plan.positions_hub):
            return self.plan.positions_hub[n]
        return self.plan.draw_positions_hub(n)
