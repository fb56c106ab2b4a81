"""A minimal SignalR JSON-protocol client for the hub tests: frames in, messages out."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import WSMsgType

from frontoffice_async.testing import DEFAULT_ACCOUNT_ID, FrontOfficeSimulator

SECOND_ACCOUNT_ID = "685a7eaa360f9e7416221a62"
HUB = "/frontoffice/ws/v4/account"
ORDERS = "/frontoffice/api/v3/orders"
POSITIONS = "/frontoffice/api/v4/positions"
BULK_CLOSE = POSITIONS + "/bulk-close"
RS = "\x1e"
HANDSHAKE = '{"protocol":"json","version":1}' + RS
PING = {"type": 6}


def invocation(
    account_id: str = DEFAULT_ACCOUNT_ID, invocation_id: str = "0", target: str = "OpenOrders"
) -> str:
    message = {
        "type": 4,
        "target": target,
        "arguments": [account_id],
        "invocationId": invocation_id,
    }
    return json.dumps(message) + RS


def hub_url(sim: FrontOfficeSimulator, token: str | None = None) -> str:
    return f"{sim.url}{HUB}?access_token={token or sim.token}"


class Hub:
    """Splits text frames into SignalR messages, optionally skipping pings."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pending: list[Any] = []
        self.frames: list[str] = []

    async def next(self, *, skip_pings: bool = True, timeout: float = 2.0) -> Any:
        """The next message; fails on anything but a text frame."""
        while True:
            while self.pending:
                message = self.pending.pop(0)
                if not (skip_pings and message == PING):
                    return message
            frame = await self.ws.receive(timeout=timeout)
            assert frame.type is WSMsgType.TEXT, frame
            self._split(frame.data)

    async def until_closed(self, *, timeout: float = 2.0) -> tuple[list[Any], aiohttp.WSMessage]:
        """Every message (pings skipped) up to the end of the connection, and how it ended."""
        messages = [m for m in self.pending if m != PING]
        self.pending.clear()
        while True:
            frame = await self.ws.receive(timeout=timeout)
            if frame.type is not WSMsgType.TEXT:
                return messages, frame
            self._split(frame.data)
            messages.extend(m for m in self.pending if m != PING)
            self.pending.clear()

    def _split(self, data: str) -> None:
        assert data.endswith(RS), data
        self.frames.append(data)
        self.pending.extend(json.loads(part) for part in data.split(RS)[:-1])


async def subscribe(
    session: aiohttp.ClientSession,
    sim: FrontOfficeSimulator,
    account_id: str = DEFAULT_ACCOUNT_ID,
    target: str = "OpenOrders",
) -> tuple[aiohttp.ClientWebSocketResponse, Hub]:
    """Connect, handshake and invoke `target` (two messages in one frame)."""
    ws = await session.ws_connect(hub_url(sim))
    hub = Hub(ws)
    await ws.send_str(HANDSHAKE + invocation(account_id, target=target))
    assert await hub.next() == {}
    return ws, hub


def auth(sim: FrontOfficeSimulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {sim.token}", "accountId": DEFAULT_ACCOUNT_ID}
