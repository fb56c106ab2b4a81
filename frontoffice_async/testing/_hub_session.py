"""One OpenOrders hub connection, served the way an ASP.NET Core SignalR server serves it.

The request handler's task owns two tasks: a reader that parses the client's messages, and a
writer that sends everything in order, pings when nothing else was sent for `ping_interval`,
and ends the connection (a normal close that waits for the client's answer, or a drop).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from frontoffice_async.testing import _signalr as sr
from frontoffice_async.testing._book import OrderBook
from frontoffice_async.testing._hub_faults import HubFault, HubFaultKind
from frontoffice_async.testing._order import SimulatedOrder
from frontoffice_async.testing._tokens import Grant

__all__ = ["HubSession"]

# A client that never sends a record separator cannot make the hub buffer forever.
_MAX_PENDING_BYTES = 1 << 20
# What ASP.NET Core (with detailed errors) sends a client silent for ClientTimeoutInterval.
_CLIENT_TIMEOUT_ERROR = (
    "Connection closed with an error. OperationCanceledException: Client hasn't sent a "
    "message/ping within the configured ClientTimeoutInterval."
)
_BAD_MESSAGE = "Connection closed with an error. InvalidDataException: "
# What ASP.NET Core (with detailed errors) completes a stream with when producing it throws.
_STREAM_ERROR = "An error occurred on the server while streaming results."


class _Action(enum.Enum):
    """What the writer does after sending the text queued before it."""

    CLOSE_SOCKET = "close the websocket normally (1000)"
    DROP = "close the TCP connection without a close frame"


class HubSession:
    """One hub connection: snapshot and updates of OpenOrders streams, faults, shutdown."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
        grant: Grant,
        book: OrderBook,
        *,
        fault: HubFault | None,
        ping_interval: float,
        client_timeout: float | None,
    ) -> None:
        self._ws = ws
        self._transport = transport
        self._grant = grant
        self._book = book
        self._ping_interval = ping_interval
        self._client_timeout = client_timeout
        # Spent by the first snapshot; SILENCE acts from the handshake on.
        self._fault = fault
        self._silent = fault is not None and fault.kind is HubFaultKind.SILENCE
        self._pings = not (self._silent and fault is not None and not fault.pings)
        self._outbox: asyncio.Queue[str | _Action] = asyncio.Queue()
        self._streams: dict[str, Callable[[], None]] = {}
        self._handshaken = False
        # Set once the connection is ending: nothing more is read or queued.
        self._stopping = False
        self._finished = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Serve the connection until either side ends it."""
        reader = asyncio.create_task(self._read(), name="frontoffice-simulator-hub-reader")
        self._reader = reader
        writer = asyncio.create_task(self._write(), name="frontoffice-simulator-hub-writer")
        writer.add_done_callback(self._writer_done)
        try:
            await asyncio.wait([reader])  # the writer may have cancelled it to close
            if not reader.cancelled():
                reader.result()  # a bug in the reader surfaces here
            if not self._ws.closed:  # else the client closed: nothing more can be sent
                # Whatever is queued leaves first; then a normal close.
                self._outbox.put_nowait(_Action.CLOSE_SOCKET)
                await writer
        finally:
            self._stop_streams()
            for task in (reader, writer):
                task.cancel()
            await asyncio.wait([reader, writer])
            if not self._ws.closed:
                await self._ws.close()
            self._finished.set()

    def _writer_done(self, writer: asyncio.Task[None]) -> None:
        """A writer that failed (a bug) must not leave the client waiting for ever: stop
        reading and drop the connection; `run` then raises the writer's error."""
        if writer.cancelled() or writer.exception() is None:
            return
        self._stopping = True
        if self._reader is not None:
            self._reader.cancel()
        if self._transport is not None:
            self._transport.close()

    async def shutdown(self, grace: float) -> None:
        """Close as ASP.NET Core does on shutdown: `{"type":7,"allowReconnect":true}`, then
        a normal websocket close. A peer that has not answered within `grace` is cut off."""
        if not self._stopping:
            if self._handshaken:
                self._close(allow_reconnect=True)
            else:  # not a hub connection yet: there is no Close message to send
                self._stopping = True
                self._outbox.put_nowait(_Action.CLOSE_SOCKET)
        try:
            async with asyncio.timeout(grace):
                await self._finished.wait()
        except TimeoutError:
            if self._transport is not None:
                self._transport.close()

    # --- reading ------------------------------------------------------------------------------

    async def _read(self) -> None:
        records = sr.RecordBuffer(_MAX_PENDING_BYTES)
        loop = asyncio.get_running_loop()
        heard_at = loop.time()
        while True:
            # Like ClientTimeoutInterval: only hub messages count, not websocket pings. A
            # silent (hung) hub enforces nothing, so a client's own silence check can fire.
            watching = self._handshaken and not (self._stopping or self._silent)
            timeout = self._client_timeout if watching else None
            try:
                async with asyncio.timeout_at(None if timeout is None else heard_at + timeout):
                    message = await self._ws.receive()
            except TimeoutError:
                self._close(error=_CLIENT_TIMEOUT_ERROR, allow_reconnect=True)
                return
            if message.type is WSMsgType.TEXT:
                data = message.data.encode()
            elif message.type is WSMsgType.BINARY:
                data = message.data
            else:  # CLOSE, CLOSING, CLOSED or ERROR: the connection is over
                return
            heard_at = loop.time()
            for record in records.feed(data):
                if not self._dispatch(record):
                    return
            if records.overflowing:
                self._fail(_BAD_MESSAGE + "message too large or missing its record separator.")
                return

    def _dispatch(self, raw: bytes) -> bool:
        """Handle one message; False when the connection must end."""
        if self._stopping:
            return True
        try:
            record = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._fail(_BAD_MESSAGE + "the message is not valid UTF-8.")
            return False
        if not self._handshaken:
            return self._handshake(record)
        if self._silent:
            return True
        try:
            message = json.loads(record)
        except ValueError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("type"), int):
            self._fail(_BAD_MESSAGE + "bad message.")
            return False
        kind = message["type"]
        invocation_id = message.get("invocationId")
        if kind == sr.STREAM_INVOCATION:
            return self._start_stream(message)
        if kind == sr.INVOCATION and isinstance(invocation_id, str):
            target = message.get("target")
            error = f"Unknown hub method '{target}'"
            if _is_open_orders(target):
                error = (
                    "The client attempted to invoke the streaming 'OpenOrders' method with a "
                    "non-streaming invocation."
                )
            self._queue(sr.completion_frame(invocation_id, error))
        elif kind == sr.CANCEL_INVOCATION and isinstance(invocation_id, str):
            unsubscribe = self._streams.pop(invocation_id, None)
            if unsubscribe is not None:  # an unknown id is ignored, as ASP.NET Core does
                unsubscribe()
                self._queue(sr.completion_frame(invocation_id))
        elif kind == sr.CLOSE:
            return False
        # Pings, and the client-to-server stream messages this hub never asks for, are ignored.
        return True

    def _handshake(self, record: str) -> bool:
        error = sr.handshake_error(record)
        if error is not None:
            self._queue(sr.frame({"error": error}))
            return False
        self._handshaken = True
        self._queue("{}" + sr.RS)
        return True

    def _start_stream(self, message: dict[str, Any]) -> bool:
        invocation_id = message.get("invocationId")
        if not isinstance(invocation_id, str):
            self._fail(_BAD_MESSAGE + "StreamInvocation needs an invocationId.")
            return False
        target = message.get("target")
        arguments = message.get("arguments")
        account_id = arguments[0] if isinstance(arguments, list) and arguments else None
        error = None
        if invocation_id in self._streams:
            error = f"Invocation ID '{invocation_id}' is already in use."
        elif not _is_open_orders(target):
            error = f"Unknown hub method '{target}'"
        elif not (
            isinstance(arguments, list) and len(arguments) == 1 and isinstance(account_id, str)
        ):
            count = len(arguments) if isinstance(arguments, list) else 0
            error = (
                "Failed to invoke 'OpenOrders' due to an error on the server. "
                f"InvalidDataException: Invocation provides {count} argument(s) "
                "but target expects 1."
            )
        elif account_id not in self._grant.accounts:
            error = (
                "Failed to invoke 'OpenOrders' due to an error on the server. "
                f"HubException: Account {account_id} is not accessible with this token."
            )
        if error is not None or not isinstance(account_id, str):
            self._queue(sr.completion_frame(invocation_id, error))
            return True
        return self._subscribe(invocation_id, account_id)

    def _subscribe(self, invocation_id: str, account_id: str) -> bool:
        fault, self._fault = self._fault, None
        kind = None if fault is None else fault.kind
        if fault is not None and kind is HubFaultKind.CLOSE:
            self._close(error=fault.error, allow_reconnect=fault.allow_reconnect)
            return False
        if kind is HubFaultKind.DROP:
            self._stopping = True
            self._outbox.put_nowait(_Action.DROP)
            return False
        if kind is HubFaultKind.COMPLETE:
            self._queue(sr.completion_frame(invocation_id))
            return True
        # Snapshot and subscription happen in one step of the loop: no change falls between.
        try:
            snapshot = [o.to_open_order_wire() for o in self._book.open_orders(account_id)]
        except Exception as exc:  # an order a test spoiled; see _stream_failed
            self._stream_failed(invocation_id, exc)
            return True
        if fault is not None and snapshot:
            snapshot = _spoil(snapshot, fault)
        self._send_item(invocation_id, snapshot)

        def on_change(order: SimulatedOrder) -> None:
            try:
                item = [order.to_open_order_wire()]
            except Exception as exc:  # see _stream_failed
                self._stream_failed(invocation_id, exc)
                return
            # Every item is an array of orders, updates included, as the platform documents.
            self._send_item(invocation_id, item)

        self._streams[invocation_id] = self._book.subscribe(account_id, on_change)
        return True

    def _stream_failed(self, invocation_id: str, exc: Exception) -> None:
        """End one stream as ASP.NET Core ends a stream whose enumeration throws.

        Order fields are checked when set, so this takes an order changed behind the checks'
        back (`object.__setattr__`). The connection, the account's other streams and later
        connections are not affected; the change that failed to render is not undone.
        """
        unsubscribe = self._streams.pop(invocation_id, None)
        if unsubscribe is not None:
            unsubscribe()
        error = f"{_STREAM_ERROR} {type(exc).__name__}: {exc}"
        self._queue(sr.completion_frame(invocation_id, error))

    # --- writing ------------------------------------------------------------------------------

    async def _write(self) -> None:
        while True:
            wait = self._ping_interval if self._handshaken and self._pings else None
            try:
                async with asyncio.timeout(wait):
                    first = await self._outbox.get()
            except TimeoutError:
                first = sr.PING_FRAME
            batch = [first]
            while not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            actions = [item for item in batch if isinstance(item, _Action)]
            cut = batch.index(actions[0]) if actions else len(batch)
            text = "".join(item for item in batch[:cut] if isinstance(item, str))
            if text and not self._ws.closed:
                try:
                    await self._ws.send_str(text)
                except ConnectionError:
                    return
            if not actions:
                continue
            if actions[0] is _Action.DROP:
                if self._transport is not None:
                    self._transport.close()
                return
            # aiohttp does not wait for the client's close frame while another task is in
            # receive(), so stop reading first: then close() waits for it (up to the socket's
            # timeout), a clean close handshake as ASP.NET Core's.
            if self._reader is not None:
                self._reader.cancel()
                await asyncio.wait([self._reader])
            with contextlib.suppress(ConnectionError):
                await self._ws.close()
            return

    def _queue(self, text: str) -> None:
        if not self._stopping:
            self._outbox.put_nowait(text)

    def _send_item(self, invocation_id: str, orders: list[dict[str, Any]]) -> None:
        message = {"type": sr.STREAM_ITEM, "invocationId": invocation_id, "item": orders}
        self._queue(sr.frame(message))

    def _close(self, *, error: str | None = None, allow_reconnect: bool | None = None) -> None:
        """Send a Close message, then close the websocket normally; nothing more follows."""
        self._queue(sr.close_frame(error=error, allow_reconnect=allow_reconnect))
        self._stopping = True
        self._stop_streams()
        self._outbox.put_nowait(_Action.CLOSE_SOCKET)

    def _fail(self, error: str) -> None:
        self._close(error=error)

    def _stop_streams(self) -> None:
        for unsubscribe in self._streams.values():
            unsubscribe()
        self._streams.clear()


def _is_open_orders(target: object) -> bool:
    # ASP.NET Core looks hub methods up case-insensitively.
    return isinstance(target, str) and target.lower() == "openorders"


def _spoil(snapshot: list[dict[str, Any]], fault: HubFault) -> list[dict[str, Any]]:
    """The snapshot as a BAD_RECORD or DUPLICATE fault sends it."""
    if fault.kind is HubFaultKind.DUPLICATE:
        return [*snapshot, dict(snapshot[0])]
    if fault.kind is HubFaultKind.BAD_RECORD and fault.field is not None:
        first = dict(snapshot[0])
        if fault.remove:
            first.pop(fault.field, None)
        else:
            first[fault.field] = fault.value
        return [first, *snapshot[1:]]
    return snapshot
