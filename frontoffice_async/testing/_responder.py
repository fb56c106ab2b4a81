"""Answers the REST endpoints and the hub share: errors, faults, pauses, dropped connections."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from aiohttp import web

from frontoffice_async.testing import _wire
from frontoffice_async.testing._dispenser import FaultDispenser
from frontoffice_async.testing._log import ENTRY_KEY
from frontoffice_async.testing._tokens import Grant, TokenRegistry
from frontoffice_async.testing.faults import Fault, FaultKind

__all__ = ["Action", "Call", "Rejected", "Responder", "truncated"]


@attrs.frozen
class Call:
    """Who calls: the token's grant, the checked `accountId` (None where the endpoint needs
    none), and whether the request may change anything (False under a NOT_APPLIED fault)."""

    grant: Grant
    account_id: str | None
    apply: bool = True

    @property
    def account(self) -> str:
        """The checked `accountId` of an endpoint that requires one."""
        assert self.account_id is not None  # such routes check the header first
        return self.account_id


#: What an endpoint does once the checks and faults let a request through.
Action = Callable[[web.Request, Call], Awaitable[web.Response]]


class Rejected(Exception):
    """Raised by a check to answer at once with `response` (a 4xx the client earned)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class Responder:
    """Builds error answers, applies faults and pauses, and drops connections."""

    def __init__(
        self, *, dispenser: FaultDispenser, closing: asyncio.Event, trace_ids: _wire.TraceIds
    ) -> None:
        self._dispenser = dispenser
        self._closing = closing
        self._trace_ids = trace_ids

    def problem(
        self,
        status: int,
        detail: str | None = None,
        *,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        """A ProblemDetails answer with a fresh trace id."""
        return _wire.problem_response(
            status, trace_id=self._trace_ids.next(), detail=detail, errors=errors, headers=headers
        )

    def invalid(self, errors: dict[str, list[str]]) -> web.Response:
        """A 400 validation problem, as ASP.NET Core's model validation answers."""
        return self.problem(400, errors=errors)

    async def read_json(self, request: web.Request, *, empty: Any = ...) -> Any:
        """The JSON body, or `Rejected` with a 400; an empty body is `empty` if given."""
        raw = await request.read()
        if not raw.strip() and empty is not ...:
            return empty
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):  # nesting too deep, too
            raise Rejected(self.invalid({"$": ["The request body is not valid JSON."]})) from None

    def authenticate(self, token: str | None, tokens: TokenRegistry) -> Grant:
        """The grant of `token`, or `Rejected` with a 401."""
        if not token:
            raise Rejected(
                self.problem(401, "Missing bearer token.", headers={"WWW-Authenticate": "Bearer"})
            )
        grant = tokens.check(token)
        if grant is None:
            raise Rejected(
                self.problem(
                    401,
                    "The access token is invalid, expired or revoked.",
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
            )
        return grant

    def next_fault(self, request: web.Request) -> Fault | None:
        """Draw the fault of this request and note it in the request log."""
        entry = request[ENTRY_KEY]
        named = entry.order_id if entry.order_id is not None else entry.position_id
        fault = self._dispenser.next_fault(entry.endpoint, named)
        entry.fault = None if fault is None else fault.kind
        return fault

    async def early_answer(
        self, request: web.Request, fault: Fault | None
    ) -> web.StreamResponse | None:
        """The answer a fault gives instead of handling the request, or None to handle it.

        SLOW waits here (then returns None); MALFORMED and LOST_RESPONSE act after the
        request was handled and NOT_APPLIED while it is handled, so they return None too.
        """
        if fault is None:
            return None
        kind = fault.kind
        if kind is FaultKind.RATE_LIMITED:
            return self.problem(
                429, "Too many requests. Try again later.", headers=_retry_after(fault)
            )
        if kind is FaultKind.SERVER_ERROR:
            return self.problem(fault.status or 500, "An unexpected error occurred.")
        if kind is FaultKind.BAD_GATEWAY:
            return web.Response(
                status=fault.status or 502, body=_wire.BAD_GATEWAY_HTML, content_type="text/html"
            )
        if kind is FaultKind.UNAVAILABLE:
            return web.Response(status=fault.status or 503, headers=_retry_after(fault))
        if kind is FaultKind.RESPONSE:
            return web.Response(status=fault.status or 200, body=fault.body, headers=fault.headers)
        if kind is FaultKind.RESET:
            return self.drop(request)
        if kind is FaultKind.SLOW:
            delay = fault.delay if fault.delay is not None else self._dispenser.plan.slow_delay
            if not await self.pause(delay):
                return self.drop(request)
        return None

    async def pause(self, delay: float) -> bool:
        """Sleep `delay` seconds without blocking others; False if the simulator closes first."""
        if delay <= 0:
            return True
        try:
            async with asyncio.timeout(delay):
                await self._closing.wait()
        except TimeoutError:
            return True
        return False

    def drop(self, request: web.Request) -> web.Response:
        """Close the connection without answering.

        The returned response is never written: aiohttp finds the transport closing, treats it
        as a client disconnect (logged at debug level only) and ends the connection's task.
        """
        request[ENTRY_KEY].dropped = True
        transport = request.transport
        if transport is not None:
            transport.close()
        return web.Response(status=500)


def _retry_after(fault: Fault) -> dict[str, str] | None:
    if fault.retry_after is None:
        return None
    return {"Retry-After": _wire.format_retry_after(fault.retry_after)}


def truncated(response: web.Response) -> web.Response:
    """The same answer with its body cut in half, so the JSON no longer parses."""
    body = response.body if isinstance(response.body, bytes) else b""
    headers = {"Content-Type": response.headers.get("Content-Type", "application/json")}
    return web.Response(status=response.status, body=body[: len(body) // 2], headers=headers)
