"""A hostile fake platform on loopback: a SignalR hub that answers per stream target, and
REST routes the test gives. Each stream target has its own script of connections, so the
order in which a client opens its OpenOrders and OpenPositions connections does not matter.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from aiohttp import web

RS = "\x1e"
HUB_PATH = "/frontoffice/ws/v4/account"
TOKEN = "tok-ADVERSARY-SENTINEL-4f1d9b"  # long enough to be masked anywhere
ACCOUNT = "685a7eaa360f9e7416221a61"


def message(data: dict[str, Any]) -> str:
    return json.dumps(data) + RS


def item(data: Any) -> str:
    return message({"type": 2, "invocationId": "0", "item": data})


def positions_item(records: list[Any]) -> str:
    return item({"item": records})


def open_order(order_id: str, status: str = "Working") -> dict[str, Any]:
    return {
        "marketId": "spot.eth_usdt",
        "marketType": "Spot",
        "marketDisplayName": "SPOT ETH/USDT",
        "marketFullName": "Ethereum / Tether",
        "orderId": order_id,
        "timeInForce": "Gtc",
        "status": status,
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


def position(position_id: str, lots: str = "0.1", status: str = "Always Open") -> dict[str, Any]:
    return {
        "positionId": position_id,
        "marketId": "cfd.btc_usd",
        "marketType": "Cfd",
        "marketDisplayName": "CFD BTC/USD",
        "marketFullName": "Bitcoin / US Dollar",
        "createdAt": "2025-08-15T08:59:51.97Z",
        "updatedAt": "2025-08-15T08:59:51.97Z",
        "side": "Buy",
        "status": status,
        "leverage": 10,
        "positionLotAmount": lots,
        "positionPriceInRAT": "6000",
        "rateToRAT": "1",
        "usedMarginInRAT": "600",
        "openPrice": "59000",
        "currentMarketPrice": "60000",
        "unrealizedPnlDayInRAT": "100",
        "unrealizedPnlDayPercent": "0.01",
        "unrealizedPnlTotalInRAT": "100",
        "unrealizedPnlTotalPercent": "0.01",
        "takeProfit": None,
        "stopLoss": None,
        "positionModifier": None,
    }


EMPTY_ORDERS = [item([])]
EMPTY_POSITIONS = [positions_item([])]

#: A frame list: text frames, or a number (pause that many seconds), or "close" / "drop".
Frames = list[Any]


@attrs.define
class Platform:
    """What the fake platform does and what it saw."""

    streams: dict[str, list[Frames]] = attrs.field(factory=dict)
    """Per target (case as the client sends it): the frames of its n-th connection (the last
    repeats)."""
    rest: dict[tuple[str, str], Callable[[web.Request], Awaitable[web.StreamResponse]]] = (
        attrs.field(factory=dict)
    )
    url: str = ""
    invoked: list[str] = attrs.field(factory=list)
    requests: list[tuple[str, str]] = attrs.field(factory=list)
    _runner: web.AppRunner | None = None
    _release: asyncio.Event = attrs.field(factory=asyncio.Event)

    async def start(self) -> Platform:
        app = web.Application()
        app.router.add_get(HUB_PATH, self._hub)
        app.router.add_route("*", "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def aclose(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        for (method, prefix), handler in self.rest.items():
            if request.method == method and request.path.startswith(prefix):
                return await handler(request)
        return web.Response(status=404)

    async def _hub(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(timeout=0.2)
        await ws.prepare(request)
        await ws.receive_str()  # handshake
        await ws.send_str("{}" + RS)
        invocation = json.loads((await ws.receive_str()).split(RS)[0])
        target = invocation["target"]
        count = self.invoked.count(target)
        self.invoked.append(target)
        conns = self.streams.get(target, [[]])
        frames = conns[min(count, len(conns) - 1)]
        for frame in frames:
            if isinstance(frame, int | float):
                await asyncio.sleep(frame)
            elif frame == "close":
                await ws.close()
                return ws
            elif frame == "drop":
                transport = request.transport or request.protocol.transport
                if transport is not None:
                    transport.abort()
                return ws
            elif frame == "hang":
                await self._release.wait()
                return ws
            else:
                try:
                    await ws.send_str(frame)
                except (ConnectionError, RuntimeError):
                    return ws  # the client hung up
        async for _ in ws:
            pass
        return ws


def json_response(
    data: Any, status: int = 200
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(data, status=status)

    return handler
