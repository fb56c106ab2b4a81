"""The order endpoints: place an order or a stop order, cancel either."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from frontoffice_async.testing import _wire
from frontoffice_async.testing._book import OrderBook
from frontoffice_async.testing._order import OrderKind
from frontoffice_async.testing._placement import parse_order, parse_stop_order
from frontoffice_async.testing._responder import Action, Call, Responder

__all__ = ["ORDERS_PATH", "PERPETUAL_STOP_ORDERS_PATH", "STOP_ORDERS_PATH", "OrdersApi"]

ORDERS_PATH = "/frontoffice/api/v3/orders"
STOP_ORDERS_PATH = "/frontoffice/api/v3/stop-orders"
PERPETUAL_STOP_ORDERS_PATH = "/frontoffice/api/perpetual/v4/stop-orders"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class OrdersApi:
    """Place and cancel orders and stop orders in the order book."""

    def __init__(self, *, book: OrderBook, responder: Responder) -> None:
        self._book = book
        self._responder = responder

    def routes(self, serve: Callable[[Action], Handler]) -> list[web.RouteDef]:
        """The routes; `serve` wraps an action in the token, account and fault checks.

        Route names are the `endpoint` of the request log; a suffix after `:` tells two
        routes of one endpoint apart.
        """
        return [
            web.post(ORDERS_PATH, serve(self._place), name="place_order"),
            web.delete(
                ORDERS_PATH + "/{order_id}", serve(self._cancel_order), name="cancel_order"
            ),
            web.post(STOP_ORDERS_PATH, serve(self._place_spot_stop), name="place_stop_order"),
            web.post(
                PERPETUAL_STOP_ORDERS_PATH,
                serve(self._place_perpetual_stop),
                name="place_stop_order:perpetual",
            ),
            web.delete(
                STOP_ORDERS_PATH + "/{order_id}",
                serve(self._cancel_stop_order),
                name="cancel_stop_order",
            ),
        ]

    async def _place(self, request: web.Request, call: Call) -> web.Response:
        placement = parse_order(await self._responder.read_json(request))
        if isinstance(placement, dict):
            return self._responder.invalid(placement)
        order = self._book.place(placement, account_id=call.account, store=call.apply)
        return _wire.json_response({"order": order.to_wire()})

    async def _place_spot_stop(self, request: web.Request, call: Call) -> web.Response:
        return await self._place_stop(request, call, perpetual=False)

    async def _place_perpetual_stop(self, request: web.Request, call: Call) -> web.Response:
        return await self._place_stop(request, call, perpetual=True)

    async def _place_stop(
        self, request: web.Request, call: Call, *, perpetual: bool
    ) -> web.Response:
        body = await self._responder.read_json(request)
        placement = parse_stop_order(body, perpetual=perpetual)
        if isinstance(placement, dict):
            return self._responder.invalid(placement)
        stop = self._book.place_stop(placement, account_id=call.account, store=call.apply)
        return _wire.json_response({"order": stop.to_wire()})

    async def _cancel_order(self, request: web.Request, call: Call) -> web.Response:
        return self._cancel(request, call, "order")

    async def _cancel_stop_order(self, request: web.Request, call: Call) -> web.Response:
        return self._cancel(request, call, "stop")

    def _cancel(self, request: web.Request, call: Call, kind: OrderKind) -> web.Response:
        order_id = request.match_info["order_id"]
        order = self._book.find(order_id, account_id=call.account, kind=kind)
        if order is None:
            return self._responder.problem(404, f"Order {order_id} was not found.")
        if not order.is_active:
            return self._responder.problem(
                400,
                f"Order {order_id} cannot be cancelled in status {order.status}.",
                errors={"orderId": ["The order is not active."]},
            )
        if not call.apply:  # NOT_APPLIED: the answer of a cancel, and the order still open
            return _wire.json_response({"order": self._book.cancelled_copy(order).to_wire()})
        self._book.cancel(order)
        return _wire.json_response({"order": order.to_wire()})
