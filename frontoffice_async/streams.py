"""The OpenOrders stream: a small SignalR (JSON protocol) client over aiohttp websockets.

The hub's first item is the snapshot of open orders; later items are updates. The token goes
only in the `access_token` query parameter, and that URL is never logged or shown in errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Self

import aiohttp
import attrs
from yarl import URL

from . import _answers, _converter
from .auth import TokenSource
from .errors import (
    APIConnectionError,
    APITimeoutError,
    HubError,
    ResponseValidationError,
)
from .models import OpenOrder, OpenOrdersEvent

__all__ = ["Hub", "OpenOrdersStream", "read_snapshot"]

_RS: Final = "\x1e"  # SignalR record separator
_HANDSHAKE: Final = '{"protocol":"json","version":1}' + _RS
# SignalR message types
_INVOCATION, _STREAM_ITEM, _COMPLETION, _STREAM_INVOCATION = 1, 2, 3, 4
_CANCEL_INVOCATION, _PING, _CLOSE = 5, 6, 7
# aiohttp's default (4 MiB) is a snapshot of ~7,000 orders: far too small for cancel-all.
_MAX_MESSAGE: Final = 256 * 1024 * 1024
_CANCEL_STREAM: Final = json.dumps({"type": _CANCEL_INVOCATION, "invocationId": "0"}) + _RS


@attrs.frozen
class Hub:
    """Where and how a client reaches the account hub (shared by its streams)."""

    session: Callable[[], aiohttp.ClientSession]
    url: URL
    tokens: TokenSource


async def read_snapshot(hub: Hub, account_id: str, *, timeout: float | None) -> list[Any]:
    """Connect, read the first item (the snapshot of open orders) as raw records, and close."""
    stream = OpenOrdersStream(hub, account_id)
    try:
        async with asyncio.timeout(timeout):
            async with stream:
                return await stream.next_records()
    except TimeoutError as exc:
        raise APITimeoutError(
            f"no OpenOrders snapshot within {timeout:g}s",
            method="GET",
            url=stream.safe_url,
            attempts=1,
        ) from exc


class OpenOrdersStream:
    """The account's OpenOrders hub stream; each item is an `OpenOrdersEvent`.

    The first event is the snapshot of every open order; later ones are updates (usually one
    order, with its new status). Use as an async context manager and iterate:

        >>> async with client.stream_open_orders() as stream:
        ...     async for event in stream:
        ...         ...
    """

    def __init__(self, hub: Hub, account_id: str) -> None:
        self._hub = hub
        self.account_id = account_id
        """The account whose orders the stream follows."""
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: deque[str] = deque()
        self._done = False
        self._seen_snapshot = False

    @property
    def safe_url(self) -> str:
        """The hub URL without its query (which holds the token)."""
        return str(self._hub.url)

    def __repr__(self) -> str:
        return f"<OpenOrdersStream {self.safe_url} account_id={self.account_id!r}>"

    async def __aenter__(self) -> Self:
        self._ws = await self._connect()
        try:
            await self._ws.send_str(_HANDSHAKE)
            reply = await self._next_message()
            if reply.get("error"):
                raise HubError(
                    f"hub refused the handshake: {_answers.one_line(str(reply['error']))}"
                )
            invocation = {
                "type": _STREAM_INVOCATION,
                "target": "OpenOrders",
                "arguments": [self.account_id],
                "invocationId": "0",
            }
            await self._ws.send_str(json.dumps(invocation) + _RS)
        except BaseException:
            await self._ws.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        ws, self._ws = self._ws, None
        if ws is None or ws.closed:
            return
        if not self._done:
            # The peer may be gone already; closing is all that is left then.
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                await ws.send_str(_CANCEL_STREAM)
        await ws.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> OpenOrdersEvent:
        records = await self.next_records()
        is_snapshot = not self._seen_snapshot
        self._seen_snapshot = True
        orders = _converter.structure_list(records, OpenOrder, path="item", url=self.safe_url)
        return OpenOrdersEvent(is_snapshot=is_snapshot, orders=tuple(orders))

    async def next_records(self) -> list[Any]:
        """The next item's records as parsed JSON; HubError if the stream ends first."""
        while not self._done:
            message = await self._next_message()
            kind = message.get("type")
            if kind == _STREAM_ITEM and message.get("invocationId") == "0":
                item = message.get("item")
                return item if isinstance(item, list) else [item]
            if kind == _COMPLETION:
                self._done = True
                if message.get("error"):
                    raise HubError(
                        f"OpenOrders stream failed: {_answers.one_line(str(message['error']))}"
                    )
            elif kind == _CLOSE:
                self._done = True
                if message.get("error"):
                    raise HubError(
                        f"hub closed the connection: {_answers.one_line(str(message['error']))}"
                    )
            # pings, invocations and items of other streams need no answer
        raise (
            StopAsyncIteration
            if self._seen_snapshot
            else HubError("the hub ended the stream before sending the snapshot")
        )

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        tokens = self._hub.tokens
        header = await tokens.header()
        for refreshed in (False, True):
            url = self._hub.url.with_query(access_token=header.removeprefix("Bearer "))
            try:
                return await self._hub.session().ws_connect(
                    url, autoping=True, heartbeat=None, max_msg_size=_MAX_MESSAGE
                )
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status == 401 and not refreshed and tokens.should_refresh(header):
                    header = await tokens.refresh(stale=header)
                    continue
                status, headers = exc.status, dict(exc.headers or {})
            except (aiohttp.ClientError, OSError) as exc:
                _answers.forget_credentials(exc)
                error = _answers.connection_error(exc, method="GET", url=self.safe_url, attempts=1)
                raise error from None
            # Raised outside the except block: the aiohttp error (its text holds the token
            # URL) must not be reachable as our error's __context__.
            raise _answers.status_error(
                status=status,
                method="GET",
                url=self.safe_url,
                headers=headers,
                body=b"",
                attempts=1 + refreshed,
            )
        raise AssertionError("unreachable")

    async def _next_message(self) -> dict[str, Any]:
        while not self._pending:
            await self._receive_frame()
        raw = self._pending.popleft()
        try:
            message = _converter.decode(raw)
        except (ValueError, RecursionError):
            raise self._garbage(raw, "not JSON") from None
        if not isinstance(message, dict):
            raise self._garbage(raw, "not a JSON object")
        return message

    async def _receive_frame(self) -> None:
        assert self._ws is not None, "use the stream inside `async with`"
        msg = await self._ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            data: str = msg.data
        elif msg.type is aiohttp.WSMsgType.BINARY:
            data = bytes(msg.data).decode("utf-8", "replace")
        elif msg.type is aiohttp.WSMsgType.ERROR:
            error = _answers.connection_error(
                msg.data, method="GET", url=self.safe_url, attempts=1
            )
            raise error from None
        else:  # CLOSE, CLOSING, CLOSED
            self._done = True
            raise APIConnectionError(
                "the hub closed the websocket", method="GET", url=self.safe_url
            )
        if _RS not in data:
            raise self._garbage(data, "a frame without the SignalR record separator")
        self._pending.extend(part for part in data.split(_RS) if part)

    def _garbage(self, raw: str, what: str) -> ResponseValidationError:
        return ResponseValidationError(f"hub sent {what}", url=self.safe_url, body=raw)
