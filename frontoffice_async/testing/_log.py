"""The simulator's request log and counters, filled by one aiohttp middleware."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping

import attrs
from aiohttp import web

from frontoffice_async.testing._capture import Capture, Headers
from frontoffice_async.testing._hub_faults import HubFault
from frontoffice_async.testing.faults import FaultKind

__all__ = ["ENTRY_KEY", "LogEntry", "RecordedRequest", "RequestLog", "SimulatorStats"]


@attrs.frozen
class RecordedRequest:
    """One request the simulator received, as a test asserts on it.

    `status` is None while the request is still being handled and when the connection was
    closed without an answer (RESET and LOST_RESPONSE faults).

    Tokens never show: `headers` and `body` hide the bearer token, the hub's
    `access_token` and the offline token as `[hidden]` (`Authorization: Bearer [hidden]`);
    only `token`, which `repr()` leaves out, holds the token used.
    """

    #: HTTP method, e.g. `DELETE`.
    method: str
    #: The path exactly as received (still percent-encoded), without the query string.
    path: str
    #: `accounts`, `place_order`, `cancel_order`, `place_stop_order`, `cancel_stop_order`,
    #: `close_all_positions`, `close_position`, `access_token`, `hub` or `unknown`.
    endpoint: str
    #: The order id of a cancel request, percent-decoded.
    order_id: str | None
    #: The `accountId` header, if sent.
    account_id: str | None
    #: The bearer token (or the hub's `access_token`); kept out of `repr()`.
    token: str | None = attrs.field(repr=False)
    status: int | None
    fault: FaultKind | None
    #: When the request arrived, in event-loop time (`loop.time()`).
    started_at: float
    #: The hub fault a hub connection got from `FaultPlan.hub`/`hub_rates`; None otherwise.
    hub_fault: HubFault | None = None
    #: The position id of a `close_position` request, percent-decoded.
    position_id: str | None = None
    #: The request's headers (read-only, case-insensitive), credentials hidden, each value
    #: clipped to 1 KiB. Identical header sets are shared between records, so a long log
    #: of one client's requests costs little.
    headers: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    #: The request body as text (invalid UTF-8 replaced), tokens hidden, clipped to 4096
    #: characters; None for a request without a body (a DELETE, the hub).
    body: str | None = None
    #: The hub fault this connection's OpenPositions stream got from
    #: `FaultPlan.positions_hub`/`positions_hub_rates`; None otherwise.
    positions_hub_fault: HubFault | None = None


@attrs.frozen
class SimulatorStats:
    """Counters since the simulator started or since `reset_log()`."""

    #: Requests received, of every kind.
    requests: int = 0
    #: Most REST requests being handled at the same time (hub connections excluded).
    max_in_flight: int = 0
    #: Distinct TCP connections that carried at least one request.
    connections_opened: int = 0


@attrs.define
class LogEntry:
    """The mutable record of a request while it is handled."""

    method: str
    path: str
    endpoint: str
    order_id: str | None
    account_id: str | None
    token: str | None = attrs.field(repr=False)
    started_at: float
    status: int | None = None
    fault: FaultKind | None = None
    hub_fault: HubFault | None = None
    position_id: str | None = None
    headers: Headers | None = None
    body: str | None = None
    positions_hub_fault: HubFault | None = None
    #: Set when the handler closed the connection instead of answering.
    dropped: bool = False

    def freeze(self) -> RecordedRequest:
        """The public, immutable view."""
        return RecordedRequest(
            method=self.method,
            path=self.path,
            endpoint=self.endpoint,
            order_id=self.order_id,
            account_id=self.account_id,
            token=self.token,
            status=self.status,
            fault=self.fault,
            started_at=self.started_at,
            hub_fault=self.hub_fault,
            position_id=self.position_id,
            headers={} if self.headers is None else self.headers,
            body=self.body,
            positions_hub_fault=self.positions_hub_fault,
        )


ENTRY_KEY = web.RequestKey("frontoffice_simulator_log_entry", LogEntry)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RequestLog:
    """Records every request in arrival order and keeps the counters of `SimulatorStats`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._capture = Capture(secrets)
        self._entries: list[LogEntry] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._requests = 0
        # Transports identify connections; weak so the log never keeps a socket alive.
        self._connections: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()
        self._connections_opened = 0

    def records(self) -> list[RecordedRequest]:
        """Every logged request, oldest first."""
        return [entry.freeze() for entry in self._entries]

    def stats(self) -> SimulatorStats:
        """The current counters."""
        return SimulatorStats(
            requests=self._requests,
            max_in_flight=self._max_in_flight,
            connections_opened=self._connections_opened,
        )

    def reset(self) -> None:
        """Forget the logged requests and start the counters again."""
        self._entries.clear()
        self._requests = 0
        self._max_in_flight = self._in_flight
        self._connections = weakref.WeakSet()
        self._connections_opened = 0

    @web.middleware
    async def middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Log the request, count it, and fill in its final status."""
        entry = self._open(request)
        request[ENTRY_KEY] = entry
        counted = entry.endpoint != "hub"
        if counted:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            if entry.endpoint != "unknown" and request.body_exists:
                # Read before the handler, so a request a fault answers early shows its body
                # too; the handler gets the same bytes again (aiohttp keeps them). A body
                # over aiohttp's limit raises its 413 here.
                raw = await request.read()
                entry.body = self._capture.body(raw, _tokens_of(request))
            response = await handler(request)
        except web.HTTPException as exc:
            entry.status = exc.status
            raise
        else:
            entry.status = None if entry.dropped else response.status
            return response
        finally:
            if counted:
                self._in_flight -= 1

    def _open(self, request: web.Request) -> LogEntry:
        route_name = request.match_info.route.name
        self._requests += 1
        transport = request.transport
        if transport is not None and transport not in self._connections:
            self._connections.add(transport)
            self._connections_opened += 1
        entry = LogEntry(
            method=request.method,
            path=request.raw_path.partition("?")[0],
            # Two routes may serve one endpoint ("place_stop_order:perpetual").
            endpoint=(route_name or "unknown").partition(":")[0],
            order_id=request.match_info.get("order_id"),
            position_id=request.match_info.get("position_id"),
            account_id=request.headers.get("accountId"),
            token=_token_of(request),
            started_at=asyncio.get_running_loop().time(),
            headers=self._capture.headers(request.headers, _tokens_of(request)),
        )
        self._entries.append(entry)
        return entry


def _tokens_of(request: web.Request) -> tuple[str, ...]:
    """Every credential the request carries, to hide wherever it shows up."""
    value = request.headers.get("Authorization", "")
    _, space, credentials = value.partition(" ")
    tokens = [(credentials if space else value).strip(), *request.query.getall("access_token", ())]
    return tuple(token for token in tokens if token)


def _token_of(request: web.Request) -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.query.get("access_token") or None
