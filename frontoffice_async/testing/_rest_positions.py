"""The position endpoints: close every position of an account (by profit or loss), or one.

A close takes effect at once (a NOT_APPLIED fault answers the same and changes nothing).
A stop-out armed with `FrontOfficeSimulator.stop_out_on_close` strikes at the next close the
simulator accepts on that account: the platform places orders of its own while positions
close, and a flatten must notice them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from decimal import Decimal

from aiohttp import web

from frontoffice_async.testing import _wire
from frontoffice_async.testing._book import OrderBook
from frontoffice_async.testing._placement import positive_decimal
from frontoffice_async.testing._position import SimulatedPosition
from frontoffice_async.testing._position_book import CLOSE_MODES, PositionBook
from frontoffice_async.testing._responder import Action, Call, Rejected, Responder

__all__ = ["POSITIONS_PATH", "PositionsApi"]

POSITIONS_PATH = "/frontoffice/api/v4/positions"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_MODES = ", ".join(CLOSE_MODES)


class PositionsApi:
    """Close positions in the position book, and strike armed stop-outs."""

    def __init__(
        self,
        *,
        positions: PositionBook,
        orders: OrderBook,
        responder: Responder,
        stop_outs: MutableMapping[str, int],
    ) -> None:
        self._positions = positions
        self._orders = orders
        self._responder = responder
        # Account id -> orders the next accepted close there places itself (a live mapping).
        self._stop_outs = stop_outs

    def routes(self, serve: Callable[[Action], Handler]) -> list[web.RouteDef]:
        """The routes; `serve` wraps an action in the token, account and fault checks."""
        return [
            web.post(
                POSITIONS_PATH + "/bulk-close", serve(self._close_all), name="close_all_positions"
            ),
            web.post(
                POSITIONS_PATH + "/{position_id}/close",
                serve(self._close_one),
                name="close_position",
            ),
        ]

    async def _close_all(self, request: web.Request, call: Call) -> web.Response:
        body = await self._responder.read_json(request, empty=None)
        mode = body.get("mode") if isinstance(body, dict) else None
        if not isinstance(mode, str) or mode not in CLOSE_MODES:
            # As ASP.NET Core's model validation: keyed by the field, the value not echoed.
            return self._responder.invalid({"mode": [f"The mode must be one of {_MODES}."]})
        chosen = self._positions.open_positions(call.account, mode=mode)
        self._apply(call, chosen, None)
        ids = [position.position_id for position in chosen]
        return _wire.json_response({"status": "accepted", "positionIds": ids})

    async def _close_one(self, request: web.Request, call: Call) -> web.Response:
        lots = self._lots_to_close(await self._responder.read_json(request, empty=None))
        position_id = request.match_info["position_id"]
        position = self._positions.find(position_id, account_id=call.account)
        if position is None:
            return self._responder.problem(404, f"Position {position_id} was not found.")
        if lots is not None and lots > position.position_lot_amount:
            return self._responder.invalid(
                {
                    "closePositionLotAmount": [
                        "The closePositionLotAmount exceeds the position's "
                        f"{_wire.format_decimal(position.position_lot_amount)} lots."
                    ]
                }
            )
        self._apply(call, [position], lots)
        return _wire.json_response({"positionId": position_id})

    def _lots_to_close(self, body: object) -> Decimal | None:
        """The lots a single close asks for; None (the whole position) for an empty body,
        null, or a body without `closePositionLotAmount` (or with it null)."""
        if body is None:
            return None
        if not isinstance(body, dict):
            raise Rejected(self._responder.invalid({"$": ["The request body must be an object."]}))
        value = body.get("closePositionLotAmount")
        if value is None:
            return None
        lots = positive_decimal(value)
        if lots is None:
            message = "The closePositionLotAmount must be a positive decimal."
            raise Rejected(self._responder.invalid({"closePositionLotAmount": [message]}))
        return lots

    def _apply(
        self, call: Call, positions: Sequence[SimulatedPosition], lots: Decimal | None
    ) -> None:
        """Strike an armed stop-out, then close (unless NOT_APPLIED says otherwise)."""
        if positions and self._stop_outs.get(call.account):
            count = self._stop_outs.pop(call.account)
            first = positions[0]
            self._orders.stop_out(
                account_id=call.account,
                market_id=first.market_id,
                side="Buy" if first.side == "Sell" else "Sell",
                amount=first.position_lot_amount if lots is None else lots,
                count=count,
            )
        if call.apply:
            self._positions.close(positions, lots)
