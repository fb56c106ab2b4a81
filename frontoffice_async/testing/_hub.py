"""The account hub endpoint: websocket upgrades, hub faults at the door, and shutdown.

`FaultPlan.hub` is drawn here, per connection, since REFUSE answers the upgrade before the
client names a stream; `FaultPlan.positions_hub` when a connection first asks for
OpenPositions.

The connections themselves speak ASP.NET Core SignalR's JSON protocol (see `_hub_session`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence

from aiohttp import web

from frontoffice_async.testing import _wire
from frontoffice_async.testing._dispenser import FaultDispenser
from frontoffice_async.testing._hub_faults import HubFault, HubFaultKind
from frontoffice_async.testing._hub_session import HubSession
from frontoffice_async.testing._hub_streams import Stream
from frontoffice_async.testing._log import ENTRY_KEY, LogEntry
from frontoffice_async.testing._responder import Rejected, Responder, truncated
from frontoffice_async.testing._tokens import TokenRegistry
from frontoffice_async.testing.faults import FaultKind

__all__ = ["HUB_PATH", "HubEndpoint"]

HUB_PATH = "/frontoffice/ws/v4/account"

# How long a close the hub starts (a CLOSE fault, a protocol error) waits for the client's
# answer; ASP.NET Core waits up to 5 s.
_CLOSE_TIMEOUT = 2.0
# At shutdown a client that has not answered the close frame by then is cut off.
_SHUTDOWN_GRACE = 0.5


class HubEndpoint:
    """Accepts hub connections and closes them all gracefully when the simulator shuts down."""

    def __init__(
        self,
        *,
        streams: Sequence[Stream],
        tokens: TokenRegistry,
        responder: Responder,
        dispenser: FaultDispenser,
        forbidden: Collection[str],
        ping_interval: float,
        client_timeout: float | None,
    ) -> None:
        self._streams = tuple(streams)
        self._forbidden = forbidden
        self._tokens = tokens
        self._responder = responder
        self._dispenser = dispenser
        self._ping_interval = ping_interval
        self._client_timeout = client_timeout
        self._sessions: set[HubSession] = set()
        self._shutting_down = False

    def routes(self) -> list[web.RouteDef]:
        """The websocket route, logged as endpoint `hub`."""
        return [web.get(HUB_PATH, self._handle, name="hub", allow_head=False)]

    async def shutdown(self, app: web.Application) -> None:
        """Close every open hub connection gracefully (an `on_shutdown` signal handler)."""
        self._shutting_down = True
        await asyncio.gather(*(s.shutdown(_SHUTDOWN_GRACE) for s in list(self._sessions)))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        responder = self._responder
        entry = request[ENTRY_KEY]
        try:
            grant = responder.authenticate(entry.token, self._tokens)
        except Rejected as rejected:
            return rejected.response
        fault = responder.next_fault(request)
        early = await responder.early_answer(request, fault)
        if early is not None:
            return early
        if fault is not None and fault.kind is FaultKind.MALFORMED:
            return truncated(_wire.json_response({"error": "The upgrade was refused."}))
        if fault is not None and fault.kind is FaultKind.LOST_RESPONSE:
            return responder.drop(request)
        if self._shutting_down:
            return responder.problem(503, "The server is shutting down.")

        hub_fault = self._dispenser.next_hub_fault()
        entry.hub_fault = hub_fault
        if hub_fault is not None and hub_fault.kind is HubFaultKind.REFUSE:
            assert hub_fault.status is not None  # a REFUSE fault always has one
            headers = None
            if hub_fault.status == 401:
                headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            return responder.problem(hub_fault.status, headers=headers)

        ws = web.WebSocketResponse(timeout=_CLOSE_TIMEOUT)
        try:
            await ws.prepare(request)
        except ConnectionError:
            # The client left while the upgrade waited (a SLOW fault): nothing to answer.
            # Raised, aiohttp would log it with a traceback, as if the simulator had failed.
            return responder.drop(request)
        entry.status = 101
        session = HubSession(
            ws,
            request.transport,
            grant,
            self._streams,
            forbidden=self._forbidden,
            fault=hub_fault,
            positions_fault=lambda: self._positions_fault(entry),
            ping_interval=self._ping_interval,
            client_timeout=self._client_timeout,
        )
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
        return ws

    def _positions_fault(self, entry: LogEntry) -> HubFault | None:
        """Draw the fault of a connection's first OpenPositions stream, and log it."""
        fault = self._dispenser.next_positions_hub_fault()
        entry.positions_hub_fault = fault
        return fault
