"""One hub connection, served the way an ASP.NET Core SignalR server serves it.

The request handler's task owns two tasks: a reader that parses the client's messages and
starts streams (OpenOrders, OpenPositions), and a writer that sends everything in order,
pauses where a snapshot fault spaces its items, pings when nothing else was sent for
`ping_interval`, and ends the connection (a normal close that waits for the client's answer,
or a drop).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
from collections.abc import Callable, Collection, Sequence
from typing import Any

from aiohttp import WSMsgType, web

from frontoffice_async.testing import _signalr as sr
from frontoffice_async.testing._hub_faults import HubFault, HubFaultKind
from frontoffice_async.testing._hub_streams import (
    OPEN_ORDERS,
    STREAM_ERROR,
    Fail,
    Item,
    Pause,
    Stream,
    invocation_error,
    snapshot_steps,
)
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


class _Action(enum.Enum):
    """What the writer does after sending the text queued before it."""

    CLOSE_SOCKET = "close the websocket normally (1000)"
    DROP = "close the TCP connection without a close frame"


class HubSession:
    """One hub connection: snapshots and updates of its streams, faults, shutdown."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
        grant: Grant,
        streams: Sequence[Stream],
        *,
        forbidden: Collection[str],
        fault: HubFault | None,
        positions_fault: Callable[[], HubFault | None],
        ping_interval: float,
        client_timeout: float | None,
    ) -> None:
        self._ws = ws
        self._transport = transport
        self._grant = grant
        # ASP.NET Core looks hub methods up case-insensitively.
        self._methods = {stream.name.lower(): stream for stream in streams}
        # A live view: `forbid_account()` refuses new invocations at once.
        self._forbidden = forbidden
        self._ping_interval = ping_interval
        self._client_timeout = client_timeout
        # The connection's fault (FaultPlan.hub) is spent by its first OpenOrders snapshot;
        # SILENCE acts from the handshake on. An OpenPositions fault is drawn when the
        # connection first invokes OpenPositions (FaultPlan.positions_hub).
        self._fault = fault
        self._positions_fault = positions_fault
        self._positions_fault_drawn = False
        self._silent = False
        self._pings = True
        if fault is not None and fault.kind is HubFaultKind.SILENCE:
            self._go_silent(fault)
        self._outbox: asyncio.Queue[str | _Action | Pause] = asyncio.Queue()
        self._streams: dict[str, Callable[[], None]] = {}
        self._handshaken = False
        # Set once the connection is ending: nothing more is read or queued, pauses end.
        self._stopping = False
        self._stopped = asyncio.Event()
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
        self._stop()
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
                self._stop()
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
        except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
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
            stream = self._stream_named(target)
            if stream is not None:
                error = (
                    f"The client attempted to invoke the streaming '{stream.name}' method "
                    "with a non-streaming invocation."
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
        stream = self._stream_named(target)
        error = invocation_error(
            target,
            stream,
            arguments,
            in_use=invocation_id if invocation_id in self._streams else None,
            allowed=lambda account: (
                account in self._grant.accounts and account not in self._forbidden
            ),
        )
        if error is not None or stream is None or not isinstance(arguments, list):
            self._queue(sr.completion_frame(invocation_id, error))
            return True
        fault = self._take_fault(stream)
        return self._subscribe(invocation_id, arguments[0], stream, fault)

    def _stream_named(self, target: object) -> Stream | None:
        return self._methods.get(target.lower()) if isinstance(target, str) else None

    def _take_fault(self, stream: Stream) -> HubFault | None:
        """The fault this invocation meets: the connection's own for its first OpenOrders
        stream, a freshly drawn one for its first OpenPositions stream, else none."""
        if stream.name == OPEN_ORDERS:
            fault, self._fault = self._fault, None
            return fault
        if self._positions_fault_drawn:
            return None
        self._positions_fault_drawn = True
        return self._positions_fault()

    def _subscribe(
        self, invocation_id: str, account_id: str, stream: Stream, fault: HubFault | None
    ) -> bool:
        kind = None if fault is None else fault.kind
        if fault is not None and kind is HubFaultKind.CLOSE:
            self._close(error=fault.error, allow_reconnect=fault.allow_reconnect)
            return False
        if kind is HubFaultKind.DROP:
            self._stop()
            self._outbox.put_nowait(_Action.DROP)
            return False
        if kind is HubFaultKind.COMPLETE:
            self._queue(sr.completion_frame(invocation_id))
            return True
        if fault is not None and kind is HubFaultKind.SILENCE:  # from OpenPositions on
            self._go_silent(fault)
            return True
        # Snapshot and subscription happen in one step of the loop: no change falls between.
        # A fault that spaces the snapshot's items holds the updates back behind them (they
        # wait in the outbox), so the stream's latest word on a record is always the last.
        try:
            snapshot = [stream.render(record) for record in stream.open_records(account_id)]
        except Exception as exc:  # a record a test spoiled; see _stream_failed
            self._stream_failed(invocation_id, exc)
            return True
        for step in snapshot_steps(snapshot, fault):
            if isinstance(step, Item):
                self._send_item(invocation_id, stream, step.records)
            elif isinstance(step, Pause):
                self._outbox.put_nowait(step)
            elif isinstance(step, Fail):
                self._queue(sr.completion_frame(invocation_id, step.error))
                return True

        def on_change(records: Sequence[Any]) -> None:
            try:
                item = [stream.render(record) for record in records]
            except Exception as exc:  # see _stream_failed
                self._stream_failed(invocation_id, exc)
                return
            # Every item holds an array, updates included, as the platform documents `item`.
            self._send_item(invocation_id, stream, item)

        self._streams[invocation_id] = stream.subscribe(account_id, on_change)
        return True

    def _stream_failed(self, invocation_id: str, exc: Exception) -> None:
        """End one stream as ASP.NET Core ends a stream whose enumeration throws.

        Record fields are checked when set, so this takes a record changed behind the
        checks' back (`object.__setattr__`). The connection, the account's other streams and
        later connections are not affected; the change that failed to render is not undone.
        """
        unsubscribe = self._streams.pop(invocation_id, None)
        if unsubscribe is not None:
            unsubscribe()
        error = f"{STREAM_ERROR} {type(exc).__name__}: {exc}"
        self._queue(sr.completion_frame(invocation_id, error))

    def _go_silent(self, fault: HubFault) -> None:
        """Send nothing more but pings (if the fault keeps them) and a shutdown's Close."""
        self._silent = True
        self._pings = fault.pings

    # --- writing ------------------------------------------------------------------------------

    async def _write(self) -> None:
        while True:
            wait = self._ping_interval if self._handshaken and self._pings else None
            try:
                async with asyncio.timeout(wait):
                    first = await self._outbox.get()
            except TimeoutError:
                if not self._pings:  # silenced while this wait was running
                    continue
                first = sr.PING_FRAME
            batch = [first]
            while not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            text: list[str] = []
            for entry in batch:
                if isinstance(entry, str):
                    text.append(entry)
                    continue
                if not await self._send("".join(text)):
                    return
                text.clear()
                if isinstance(entry, Pause):
                    await self._pause(entry.seconds)
                    continue
                await self._end(entry)
                return
            if not await self._send("".join(text)):
                return

    async def _send(self, text: str) -> bool:
        """Send `text` (if any); False once the connection is gone."""
        if text and not self._ws.closed:
            try:
                await self._ws.send_str(text)
            except ConnectionError:
                return False
        return True

    async def _pause(self, seconds: float) -> None:
        """Wait between a snapshot's items; a connection that is ending waits no more."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopped.wait()

    async def _end(self, action: _Action) -> None:
        if action is _Action.DROP:
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

    def _queue(self, text: str) -> None:
        if not self._stopping:
            self._outbox.put_nowait(text)

    def _send_item(self, invocation_id: str, stream: Stream, records: list[Any]) -> None:
        if self._silent:  # a hung stream: its updates go nowhere
            return
        item = stream.item(records)
        self._queue(
            sr.frame({"type": sr.STREAM_ITEM, "invocationId": invocation_id, "item": item})
        )

    def _stop(self) -> None:
        self._stopping = True
        self._stopped.set()

    def _close(self, *, error: str | None = None, allow_reconnect: bool | None = None) -> None:
        """Send a Close message, then close the websocket normally; nothing more follows."""
        self._queue(sr.close_frame(error=error, allow_reconnect=allow_reconnect))
        self._stop()
        self._stop_streams()
        self._outbox.put_nowait(_Action.CLOSE_SOCKET)

    def _fail(self, error: str) -> None:
        self._close(error=error)

    def _stop_streams(self) -> None:
        for unsubscribe in self._streams.values():
            unsubscribe()
        self._streams.clear()
