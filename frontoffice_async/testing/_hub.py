"""The account hub: ASP.NET Core SignalR's JSON protocol over a websocket, OpenOrders only.

Every message ends with the record separator `\\x1e`; several may share one frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from frontoffice_async.testing import _wire
from frontoffice_async.testing._book import OrderBook, SimulatedOrder
from frontoffice_async.testing._log import ENTRY_KEY
from frontoffice_async.testing._rest import Rejected, Responder, truncated
from frontoffice_async.testing._tokens import Grant, TokenRegistry
from frontoffice_async.testing.faults import FaultKind

__all__ = ["HUB_PATH", "HubEndpoint"]

HUB_PATH = "/frontoffice/ws/v4/account"

_RS = "\x1e"
_PING = '{"type":6}' + _RS
# How long a close handshake the hub starts may wait for the client's answer.
_CLOSE_TIMEOUT = 2.0
# At shutdown a client that does not answer the close frame at once is cut off.
_SHUTDOWN_GRACE = 0.2
# A client that never sends a record separator cannot make the hub buffer forever.
_MAX_PENDING_TEXT = 1 << 20

# SignalR message types (HubProtocolConstants).
_INVOCATION = 1
_STREAM_ITEM = 2
_COMPLETION = 3
_STREAM_INVOCATION = 4
_CANCEL_INVOCATION = 5
_CLOSE = 7


def _frame(message: dict[str, Any]) -> str:
    return _wire.dumps(message) + _RS


class HubEndpoint:
    """Accepts hub connections and closes them all when the simulator shuts down."""

    def __init__(
        self,
        *,
        book: OrderBook,
        tokens: TokenRegistry,
        responder: Responder,
        ping_interval: float,
    ) -> None:
        self._book = book
        self._tokens = tokens
        self._responder = responder
        self._ping_interval = ping_interval
        self._sessions: set[_HubSession] = set()

    def routes(self) -> list[web.RouteDef]:
        """The websocket route, logged as endpoint `hub`."""
        return [web.get(HUB_PATH, self._handle, name="hub", allow_head=False)]

    async def shutdown(self, app: web.Application) -> None:
        """Close every open hub connection (an `on_shutdown` signal handler)."""
        await asyncio.gather(*(session.close() for session in list(self._sessions)))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        responder = self._responder
        try:
            grant = responder.authenticate(request[ENTRY_KEY].token, self._tokens)
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

        ws = web.WebSocketResponse(timeout=_CLOSE_TIMEOUT)
        await ws.prepare(request)
        request[ENTRY_KEY].status = 101
        session = _HubSession(ws, grant, self._book, self._ping_interval)
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
        return ws


class _HubSession:
    """One hub connection: a reader (the handler's task) and a writer task it owns.

    All outgoing messages go through one queue, so the snapshot of a stream always precedes
    its updates; whatever is queued at once leaves in one websocket frame.
    """

    def __init__(
        self, ws: web.WebSocketResponse, grant: Grant, book: OrderBook, ping_interval: float
    ) -> None:
        self._ws = ws
        self._grant = grant
        self._book = book
        self._ping_interval = ping_interval
        # None asks the writer to stop once everything queued before it is sent.
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._streams: dict[str, Callable[[], None]] = {}
        self._handshaken = False

    async def run(self) -> None:
        """Serve the connection until either side closes it."""
        writer = asyncio.create_task(self._write(), name="frontoffice-simulator-hub-writer")
        try:
            await self._read()
            self._outbox.put_nowait(None)
            await writer
        finally:
            for unsubscribe in self._streams.values():
                unsubscribe()
            self._streams.clear()
            writer.cancel()
            await asyncio.wait([writer])
            await self._ws.close()

    async def close(self) -> None:
        """Close with 1001 Going Away, cutting off a client that does not answer at once."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_SHUTDOWN_GRACE):
                await self._ws.close(code=WSCloseCode.GOING_AWAY, message=b"Server shutdown")

    async def _read(self) -> None:
        pending = ""
        async for message in self._ws:
            if message.type is WSMsgType.TEXT:
                pending += message.data
            elif message.type is WSMsgType.BINARY:
                self._fail("Binary messages are not supported by the JSON protocol.")
                return
            else:  # an ERROR message: the connection is unusable
                return
            *records, pending = pending.split(_RS)
            for record in records:
                if not self._dispatch(record):
                    return
            if len(pending) > _MAX_PENDING_TEXT:
                self._fail("Message too large or missing its record separator.")
                return

    async def _write(self) -> None:
        while True:
            wait = self._ping_interval if self._handshaken else None
            try:
                async with asyncio.timeout(wait):
                    first = await self._outbox.get()
            except TimeoutError:
                first = _PING
            batch = [first]
            while not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            stop = None in batch
            text = "".join(item for item in batch[: batch.index(None) if stop else None] if item)
            if text and not self._ws.closed:
                try:
                    await self._ws.send_str(text)
                except ConnectionError:
                    return
            if stop:
                return

    def _send(self, message: dict[str, Any]) -> None:
        self._outbox.put_nowait(_frame(message))

    def _fail(self, error: str) -> None:
        self._send({"type": _CLOSE, "error": error, "allowReconnect": False})

    def _dispatch(self, record: str) -> bool:
        """Handle one message; False when the connection must close."""
        if not self._handshaken:
            return self._handshake(record)
        try:
            message = json.loads(record)
        except ValueError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("type"), int):
            self._fail("Connection closed with an error. InvalidDataException: bad message.")
            return False
        kind = message["type"]
        if kind == _STREAM_INVOCATION:
            return self._start_stream(message)
        if kind == _INVOCATION:
            invocation_id = message.get("invocationId")
            if isinstance(invocation_id, str):
                self._complete(invocation_id, f"Unknown hub method '{message.get('target')}'")
        elif kind == _CANCEL_INVOCATION:
            unsubscribe = self._streams.pop(str(message.get("invocationId")), None)
            if unsubscribe is not None:
                unsubscribe()
        elif kind == _CLOSE:
            return False
        # Pings, and the client-to-server stream messages this hub never asks for, are ignored.
        return True

    def _handshake(self, record: str) -> bool:
        try:
            request = json.loads(record)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            error = "An unexpected error occurred during connection handshake."
        elif request.get("protocol") != "json":
            error = f"The protocol '{request.get('protocol')}' is not supported."
        elif request.get("version") != 1:
            error = f"The server does not support version {request.get('version')} of 'json'."
        else:
            self._handshaken = True
            self._outbox.put_nowait("{}" + _RS)
            return True
        self._send({"error": error})
        return False

    def _start_stream(self, message: dict[str, Any]) -> bool:
        invocation_id = message.get("invocationId")
        if not isinstance(invocation_id, str):
            self._fail("Connection closed with an error. StreamInvocation needs invocationId.")
            return False
        target = message.get("target")
        arguments = message.get("arguments")
        if invocation_id in self._streams:
            self._complete(invocation_id, f"Invocation ID '{invocation_id}' is already in use.")
        elif target != "OpenOrders":
            self._complete(invocation_id, f"Unknown hub method '{target}'")
        elif not (
            isinstance(arguments, list) and len(arguments) == 1 and isinstance(arguments[0], str)
        ):
            count = len(arguments) if isinstance(arguments, list) else 0
            self._complete(
                invocation_id,
                "Failed to invoke 'OpenOrders' due to an error on the server. "
                f"InvalidDataException: Invocation provides {count} argument(s) "
                "but target expects 1.",
            )
        elif arguments[0] not in self._grant.accounts:
            self._complete(
                invocation_id,
                "Failed to invoke 'OpenOrders' due to an error on the server. "
                f"HubException: Account {arguments[0]} is not accessible with this token.",
            )
        else:
            self._subscribe(invocation_id, arguments[0])
        return True

    def _subscribe(self, invocation_id: str, account_id: str) -> None:
        # Snapshot and subscription happen in one step of the loop: no change falls between.
        snapshot = [order.to_open_order_wire() for order in self._book.open_orders(account_id)]
        self._send({"type": _STREAM_ITEM, "invocationId": invocation_id, "item": snapshot})

        def on_change(order: SimulatedOrder) -> None:
            item = order.to_open_order_wire()
            self._send({"type": _STREAM_ITEM, "invocationId": invocation_id, "item": item})

        self._streams[invocation_id] = self._book.subscribe(account_id, on_change)

    def _complete(self, invocation_id: str, error: str) -> None:
        self._send({"type": _COMPLETION, "invocationId": invocation_id, "error": error})
