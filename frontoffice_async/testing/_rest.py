"""The simulator's REST endpoints: checks, faults, then the action on the simulated state.

Every request goes the same way: the latency pause, the bearer token, the `accountId` header
(where the endpoint acts on an account), the fault the plan draws, then the action. The order
and position endpoints live in `_rest_orders` and `_rest_positions`; this module serves them,
the account list and the token exchange.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, Protocol

from aiohttp import web

from frontoffice_async.testing import _wire
from frontoffice_async.testing._log import ENTRY_KEY
from frontoffice_async.testing._responder import Action, Call, Rejected, Responder, truncated
from frontoffice_async.testing._tokens import Grant, TokenRegistry
from frontoffice_async.testing.faults import Fault, FaultKind

__all__ = ["ACCOUNTS_PATH", "EXCHANGE_PATH", "EndpointGroup", "RestApi"]

ACCOUNTS_PATH = "/frontoffice/api/v3/accounts"
EXCHANGE_PATH = "/frontoffice/api/v4/access-token"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class EndpointGroup(Protocol):
    """Endpoints that act on one account (orders, positions)."""

    def routes(self, serve: Callable[[Action], Handler]) -> list[web.RouteDef]:
        """The group's routes, each handler made by `serve(action)`."""
        ...


class RestApi:
    """Serves the REST endpoints: the checks and faults every request goes through."""

    def __init__(
        self,
        *,
        groups: Sequence[EndpointGroup],
        tokens: TokenRegistry,
        responder: Responder,
        account_ids: Sequence[str],
        forbidden: Collection[str],
        latency: float,
        offline_token: str | None,
        access_token_ttl: float,
    ) -> None:
        self._groups = tuple(groups)
        self._tokens = tokens
        self._responder = responder
        self._account_ids = tuple(account_ids)
        # A live view: `forbid_account()` changes it while the simulator runs.
        self._forbidden = forbidden
        self._latency = latency
        self._offline_token = offline_token
        self._access_token_ttl = access_token_ttl

    def routes(self) -> list[web.RouteDef]:
        """The routes, named after the `endpoint` the request log shows."""
        routes = [web.get(ACCOUNTS_PATH, self._accounts, name="accounts", allow_head=False)]
        for group in self._groups:
            routes += group.routes(self._serving)
        if self._offline_token is not None:
            routes.append(web.post(EXCHANGE_PATH, self._access_token, name="access_token"))
        return routes

    def _serving(self, action: Action) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._serve(request, action, account_required=True)

        return handler

    async def _accounts(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._list_accounts, account_required=False)

    async def _access_token(self, request: web.Request) -> web.StreamResponse:
        responder = self._responder
        if not await responder.pause(self._latency):
            return responder.drop(request)
        # The exchange is the authentication, so its faults come first.
        fault = responder.next_fault(request)
        early = await responder.early_answer(request, fault)
        if early is not None:
            return early
        return await self._finish(request, fault, self._exchange(request, _applies(fault)))

    async def _serve(
        self, request: web.Request, action: Action, *, account_required: bool
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
        call = Call(grant, account_id, apply=_applies(fault))
        return await self._finish(request, fault, action(request, call))

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
        # A forbidden account answers as one the token does not own: the same 403.
        if account_id not in grant.accounts or account_id in self._forbidden:
            raise Rejected(
                self._responder.problem(
                    403, f"Account {account_id} is not accessible with this token."
                )
            )
        return account_id

    async def _list_accounts(self, request: web.Request, call: Call) -> web.Response:
        return _wire.json_response(
            [
                _account_wire(index, account_id)
                for index, account_id in enumerate(self._account_ids)
                if account_id in call.grant.accounts
            ]
        )

    async def _exchange(self, request: web.Request, apply: bool) -> web.Response:
        body = await self._responder.read_json(request)
        offline = body.get("token") if isinstance(body, dict) else None
        if not isinstance(offline, str) or not offline:
            return self._responder.invalid({"token": ["The token field is required."]})
        if offline != self._offline_token:
            return self._responder.problem(401, "The offline token is invalid or revoked.")
        ttl = self._access_token_ttl
        access_token = self._tokens.issue_jwt(self._account_ids, ttl=ttl)
        if not apply:  # NOT_APPLIED: a token is answered, but the platform never took it
            self._tokens.revoke(access_token)
        expires_in = int(ttl) if float(ttl).is_integer() else ttl
        return _wire.json_response({"accessToken": access_token, "expiresIn": expires_in})


def _applies(fault: Fault | None) -> bool:
    return fault is None or fault.kind is not FaultKind.NOT_APPLIED


def _account_wire(index: int, account_id: str) -> dict[str, Any]:
    return {
        "accountId": account_id,
        "accountName": "Main" if index == 0 else f"Account {index + 1}",
        "accountType": "Hedging",
        "totalBalanceInRAT": "10000",
        "isCopyTradingAccount": False,
    }
