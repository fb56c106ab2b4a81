"""A hand-written SignalR hub on loopback that follows a script, connection by connection.

Stricter and nastier than the simulator on purpose: it can close gracefully before the
snapshot, go silent, drop the TCP connection, never answer a close, redirect, or refuse the
upgrade with any status. Each test file wraps `ScriptedHubs` in a fixture.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import aiohttp
import attrs
from aiohttp import web

RS = "\x1e"
HUB_PATH = "/frontoffice/ws/v4/account"
OK = "{}" + RS  # the handshake reply


def message(data: dict[str, Any]) -> str:
    return json.dumps(data) + RS


def item(data: Any, invocation_id: str = "0") -> str:
    return message({"type": 2, "invocationId": invocation_id, "item": data})


def open_order(order_id: str = "01K2PF9XS29WN4JZRHMCTTQYJB") -> dict[str, Any]:
    """One OpenOrders record as the hub writes it (a pending SPOT limit buy)."""
    return {
        "marketId": "spot.eth_usdt",
        "marketType": "Spot",
        "marketDisplayName": "SPOT ETH/USDT",
        "marketFullName": "Ethereum / Tether",
        "orderId": order_id,
        "timeInForce": "Gtc",
        "status": "Pending",
        "source": "Manual",
        "reason": "Trader",
        "side": "Buy",
        "orderType": "Limit",
        "requestedAmount": "0.1",
        "remainingAmount": "0.1",
        "requestedPrice": "4450",
        "executionPrice": "0",
        "createdAt": "2025-08-15T08:59:51.97Z",
        "updatedAt": "2025-08-15T08:59:51.97Z",
        "fillFactor": "0",
    }


PING = message({"type": 6})
CLOSE = message({"type": 7})
CLOSE_RECONNECT = message({"type": 7, "allowReconnect": True})
COMPLETION = message({"type": 3, "invocationId": "0"})


@attrs.define
class Conn:
    """What the hub does on one connection attempt."""

    frames: list[str | bytes | float] = attrs.field(factory=list)
    """Sent after the client's invocation; bytes go as binary frames; a number pauses that
    many seconds (items inside or outside a client's settle window)."""
    handshake_reply: str | None = OK
    """None: never answer the handshake."""
    end: Literal["wait", "close", "drop", "deaf"] = "wait"
    """After the frames: wait for the client to close; close the websocket; drop the TCP
    connection; or never read again (a client close is never answered)."""
    status: int | None = None
    """Answer the upgrade with this HTTP status (and `headers`, `body`) instead; 0 drops the
    connection without an answer."""
    headers: dict[str, str] = attrs.field(factory=dict)
    body: str = ""
    echo: bool = False
    """Append the request's path and query, as the client sent them, to `body` (a proxy's
    error page quoting the request line)."""
    delay: float = 0.0
    """Seconds before answering the upgrade."""


@attrs.define
class HubScript:
    """A running scripted hub: its URL, and what it saw."""

    conns: list[Conn]
    url: str = ""
    queries: list[dict[str, str]] = attrs.field(factory=list)
    """The query of each connection attempt, in order."""
    received: list[list[str]] = attrs.field(factory=list)
    """The text frames received on each upgraded connection."""
    invoked: asyncio.Event = attrs.field(factory=asyncio.Event)
    """Set when a client started the stream (sent its invocation)."""

    @property
    def attempts(self) -> int:
        return len(self.queries)

    def messages(self, connection: int = 0) -> list[dict[str, Any]]:
        """The SignalR messages the client sent on one upgraded connection."""
        texts = self.received[connection]
        return [json.loads(m) for text in texts for m in text.split(RS) if m]


class ScriptedHubs:
    """Starts scripted hubs; `aclose` stops them all (and releases deaf handlers)."""

    def __init__(self) -> None:
        self._runners: list[web.AppRunner] = []
        self._sockets: set[web.WebSocketResponse] = set()
        self._release = asyncio.Event()

    async def start(self, *conns: Conn, prefix: str = "") -> HubScript:
        """A hub whose n-th connection follows `conns[n]` (the last one repeats)."""
        script = HubScript(list(conns) or [Conn()])
        app = web.Application()
        app.router.add_get(prefix + HUB_PATH, self._handler(script))

        async def close_sockets(_: web.Application) -> None:
            for ws in list(self._sockets):
                await ws.close()

        app.on_shutdown.append(close_sockets)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        script.url = f"http://{host}:{port}"
        return script

    async def aclose(self) -> None:
        self._release.set()
        for runner in reversed(self._runners):
            await runner.cleanup()

    def _handler(self, script: HubScript) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            index = len(script.queries)
            script.queries.append(dict(request.query))
            conn = script.conns[min(index, len(script.conns) - 1)]
            if conn.delay:
                await asyncio.sleep(conn.delay)
            if conn.status == 0:
                assert request.transport is not None
                request.transport.abort()
                return web.Response()
            if conn.status is not None:
                body = conn.body + (request.raw_path if conn.echo else "")
                return web.Response(status=conn.status, headers=conn.headers, text=body)
            ws = web.WebSocketResponse(timeout=0.5)
            await ws.prepare(request)
            self._sockets.add(ws)
            received: list[str] = []
            script.received.append(received)
            try:
                await self._serve(request, ws, conn, script, received)
            finally:
                self._sockets.discard(ws)
            return ws

        return handle

    async def _serve(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        conn: Conn,
        script: HubScript,
        received: list[str],
    ) -> None:
        received.append(await ws.receive_str())  # the handshake
        if conn.handshake_reply is None:
            await self._release.wait()
            return
        await ws.send_str(conn.handshake_reply)
        if '"error"' not in conn.handshake_reply:
            received.append(await ws.receive_str())  # the invocation
            script.invoked.set()
            for frame in conn.frames:
                if isinstance(frame, float | int):
                    await asyncio.sleep(frame)
                elif isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                else:
                    await ws.send_str(frame)
            if conn.end == "close":
                await ws.close()
                return
            if conn.end == "drop":
                assert request.transport is not None
                request.transport.abort()
                return
            if conn.end == "deaf":
                await self._release.wait()
                return
        async for msg in ws:  # until the client closes
            if msg.type is aiohttp.WSMsgType.TEXT:
                received.append(msg.data)
