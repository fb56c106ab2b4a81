"""The simulator's REST endpoints: checks, faults, then the action on the simulated state."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

import attrs
from aiohttp import web

from frontoffice_async.testing import _wire
from frontoffice_async.testing._book import OrderBook
from frontoffice_async.testing._log import ENTRY_KEY
from frontoffice_async.testing._order import OrderKind, check_field, is_text
from frontoffice_async.testing._responder import Rejected, Responder, truncated
from frontoffice_async.testing._tokens import Grant, TokenRegistry
from frontoffice_async.testing.faults import Fault, FaultKind

__all__ = ["ACCOUNTS_PATH", "EXCHANGE_PATH", "ORDERS_PATH", "STOP_ORDERS_PATH", "RestApi"]

ACCOUNTS_PATH = "/frontoffice/api/v3/accounts"
ORDERS_PATH = "/frontoffice/api/v3/orders"
STOP_ORDERS_PATH = "/frontoffice/api/v3/stop-orders"
EXCHANGE_PATH = "/frontoffice/api/v4/access-token"

_SIDES = ("Buy", "Sell")
_ORDER_TYPES = ("Market", "Limit")
_TIMES_IN_FORCE = ("Gtc", "Ioc", "Fok", "Gtd", "Day")


@attrs.frozen
class _Caller:
    grant: Grant
    account_id: str | None


class RestApi:
    """Handlers of the REST endpoints: checks, faults, then the action on the order book."""

    def __init__(
        self,
        *,
        book: OrderBook,
        tokens: TokenRegistry,
        responder: Responder,
        account_ids: Sequence[str],
        latency: float,
        offline_token: str | None,
        access_token_ttl: float,
    ) -> None:
        self._book = book
        self._tokens = tokens
        self._responder = responder
        self._account_ids = tuple(account_ids)
        self._latency = latency
        self._offline_token = offline_token
        self._access_token_ttl = access_token_ttl

    def routes(self) -> list[web.RouteDef]:
        """The routes, named after the `endpoint` the request log shows."""
        routes = [
            web.get(ACCOUNTS_PATH, self._accounts, name="accounts", allow_head=False),
            web.post(ORDERS_PATH, self._place_order, name="place_order"),
            web.delete(ORDERS_PATH + "/{order_id}", self._cancel_order, name="cancel_order"),
            web.delete(
                STOP_ORDERS_PATH + "/{order_id}", self._cancel_stop_order, name="cancel_stop_order"
            ),
        ]
        if self._offline_token is not None:
            routes.append(web.post(EXCHANGE_PATH, self._access_token, name="access_token"))
        return routes

    async def _accounts(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._list_accounts, account_required=False)

    async def _place_order(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._place, account_required=True)

    async def _cancel_order(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._cancel_regular, account_required=True)

    async def _cancel_stop_order(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._cancel_stop, account_required=True)

    async def _access_token(self, request: web.Request) -> web.StreamResponse:
        responder = self._responder
        if not await responder.pause(self._latency):
            return responder.drop(request)
        # The exchange is the authentication, so its faults come first.
        fault = responder.next_fault(request)
        early = await responder.early_answer(request, fault)
        if early is not None:
            return early
        return await self._finish(request, fault, self._exchange(request))

    async def _serve(
        self,
        request: web.Request,
        action: Callable[[web.Request, _Caller], Awaitable[web.Response]],
        *,
        account_required: bool,
    ) -> web.StreamResponse:
        responder = self._responder
        if not await responder.pause(self._latency):
            return responder.drop(request)
        try:
            grant = responder.authenticate(request[ENTRY_KEY].token, self._tokens)
            account_id = self._check_account(request, grant) if account_required else None
        except Rejected as rejected:
            return rejected.response
        fault = responder.next_fault(request)
        early = await responder.early_answer(request, fault)
        if early is not None:
            return early
        return await self._finish(request, fault, action(request, _Caller(grant, account_id)))

    async def _finish(
        self, request: web.Request, fault: Fault | None, action: Awaitable[web.Response]
    ) -> web.StreamResponse:
        try:
            response = await action
        except Rejected as rejected:
            response = rejected.response
        if fault is not None and fault.kind is FaultKind.MALFORMED:
            return truncated(response)
        if fault is not None and fault.kind is FaultKind.LOST_RESPONSE:
            return self._responder.drop(request)
        return response

    def _check_account(self, request: web.Request, grant: Grant) -> str:
        account_id = request.headers.get("accountId", "").strip()
        if not account_id:
            raise Rejected(
                self._responder.problem(
                    400,
                    "The accountId header is required.",
                    errors={"accountId": ["The accountId header is required."]},
                )
            )
        if account_id not in grant.accounts:
            raise Rejected(
                self._responder.problem(
                    403, f"Account {account_id} is not accessible with this token."
                )
            )
        return account_id

    async def _list_accounts(self, request: web.Request, caller: _Caller) -> web.Response:
        return _wire.json_response(
            [
                _account_wire(index, account_id)
                for index, account_id in enumerate(self._account_ids)
                if account_id in caller.grant.accounts
            ]
        )

    async def _cancel_regular(self, request: web.Request, caller: _Caller) -> web.Response:
        return self._cancel(request, caller, "order")

    async def _cancel_stop(self, request: web.Request, caller: _Caller) -> web.Response:
        return self._cancel(request, caller, "stop")

    def _cancel(self, request: web.Request, caller: _Caller, kind: OrderKind) -> web.Response:
        order_id = request.match_info["order_id"]
        assert caller.account_id is not None  # the route requires the header
        order = self._book.find(order_id, account_id=caller.account_id, kind=kind)
        if order is None:
            return self._responder.problem(404, f"Order {order_id} was not found.")
        if not order.is_active:
            return self._responder.problem(
                400,
                f"Order {order_id} cannot be cancelled in status {order.status}.",
                errors={"orderId": ["The order is not active."]},
            )
        self._book.cancel(order)
        return _wire.json_response({"order": order.to_wire()})

    async def _place(self, request: web.Request, caller: _Caller) -> web.Response:
        assert caller.account_id is not None  # the route requires the header
        body = await self._read_json(request)
        fields = body.get("order") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            raise Rejected(self._invalid({"order": ["The order field is required."]}))
        errors: dict[str, list[str]] = {}
        market_id = fields.get("marketId")
        if not isinstance(market_id, str) or not market_id.strip() or not is_text(market_id):
            errors["order.marketId"] = ["The marketId field is required."]
        for key, allowed in (
            ("side", _SIDES),
            ("orderType", _ORDER_TYPES),
            ("timeInForce", _TIMES_IN_FORCE),
        ):
            if fields.get(key) not in allowed:
                errors[f"order.{key}"] = [f"The {key} field must be one of {', '.join(allowed)}."]
        amount = _positive_decimal(fields.get("requestedAmount"))
        if amount is None:
            errors["order.requestedAmount"] = ["The requestedAmount must be a positive decimal."]
        price = _positive_decimal(fields.get("requestedPrice"))
        is_limit = fields.get("orderType") == "Limit"
        if is_limit and price is None:
            errors["order.requestedPrice"] = ["A Limit order needs a positive requestedPrice."]
        if errors:
            return self._invalid(errors)
        assert isinstance(market_id, str)
        assert amount is not None
        order = self._book.place(
            account_id=caller.account_id,
            market_id=market_id,
            side=str(fields["side"]),
            order_type=str(fields["orderType"]),
            time_in_force=str(fields["timeInForce"]),
            requested_amount=amount,
            requested_price=price if is_limit else None,
        )
        return _wire.json_response({"order": order.to_wire()})

    async def _exchange(self, request: web.Request) -> web.Response:
        body = await self._read_json(request)
        offline = body.get("token") if isinstance(body, dict) else None
        if not isinstance(offline, str) or not offline:
            return self._invalid({"token": ["The token field is required."]})
        if offline != self._offline_token:
            return self._responder.problem(401, "The offline token is invalid or revoked.")
        ttl = self._access_token_ttl
        access_token = self._tokens.issue_jwt(self._account_ids, ttl=ttl)
        expires_in = int(ttl) if float(ttl).is_integer() else ttl
        return _wire.json_response({"accessToken": access_token, "expiresIn": expires_in})

    async def _read_json(self, request: web.Request) -> Any:
        try:
            return json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            raise Rejected(self._invalid({"$": ["The request body is not valid JSON."]})) from None

    def _invalid(self, errors: dict[str, list[str]]) -> web.Response:
        return self._responder.problem(400, errors=errors)


def _positive_decimal(value: object) -> Decimal | None:
    """A positive amount or price that fits the platform's decimal, else None (a 400)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number: Decimal = check_field("requested_amount", value)
    except ValueError:  # not a number, not finite, or beyond .NET's decimal
        return None
    return number if number > 0 else None


def _account_wire(index: int, account_id: str) -> dict[str, Any]:
    return {
        "accountId": account_id,
        "accountName": "Main" if index == 0 else f"Account {index + 1}",
        "accountType": "Hedging",
        "totalBalanceInRAT": "10000",
        "isCopyTradingAccount": False,
    }
