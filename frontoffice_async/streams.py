"""The OpenOrders stream: snapshots and live updates from the account's SignalR hub.

A snapshot is never assumed. When the hub closes, completes, drops or goes quiet before its
first item, the client connects again as the retry policy allows (attempts, full-jitter backoff,
the client's retry budget) within the snapshot's time limit. The live stream reconnects the same
way after a close that allows it or a lost connection; the first event of every connection is a
fresh snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from . import _converter
from ._hub_transport import Failure
from ._reconnect import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_SERVER_TIMEOUT,
    Episode,
    Hub,
    first_item,
    seconds,
)
from ._signalr import Connection
from .models import OpenOrder, OpenOrdersEvent
from .retry import RetryPolicy

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_SERVER_TIMEOUT",
    "Hub",
    "OpenOrdersStream",
    "read_snapshot",
]


async def read_snapshot(
    hub: Hub,
    account_id: str,
    *,
    timeout: float | None,
    policy: RetryPolicy | None = None,
    headers: Mapping[str, str] | None = None,
) -> list[Any]:
    """The account's open orders as raw records: the first item of an OpenOrders stream.

    Connects again (as `policy` allows) when the hub ends, closes or goes quiet first; all of
    it within `timeout` seconds (None: no limit). Closing our side never waits for the hub.
    Raises `APITimeoutError` when time runs out, `HubError` when the hub failed the stream or
    kept ending it, and the status or connection error of the last connection otherwise.
    """
    timeout = seconds("timeout", timeout)
    async with hub.transport.guard("the OpenOrders snapshot"):
        episode = Episode(hub, policy, limit=timeout)
        connection, records = await first_item(
            hub,
            episode,
            account_id=account_id,
            headers=headers or {},
            server_timeout=hub.server_timeout,
            handshake_timeout=hub.handshake_timeout,
        )
    # Outside the time limit: the snapshot is ours, and hanging up cannot take it back.
    await connection.hang_up()
    return records


class OpenOrdersStream:
    """The account's OpenOrders hub stream; each item is an `OpenOrdersEvent`.

    The first event is the snapshot of every open order (`is_snapshot`); later ones are updates
    (usually one order, with its new status). When the hub closes the connection and allows a
    new one (a deploy; `allowReconnect: true`, even with an error) or the connection is lost,
    the stream connects again as the client's retry policy allows, and the next event is a
    fresh snapshot. Use as an async context manager and iterate; entering it connects and
    waits for the first snapshot:

        >>> async with client.stream_open_orders() as stream:
        ...     async for event in stream:
        ...         print(event.is_snapshot, len(event.orders))

    Args:
        reconnect: False to never connect again once the first snapshot arrived: a graceful
            close then ends the iteration, a lost connection or an error Close raises.
        server_timeout: Seconds of silence after which the hub counts as dead (the hub pings
            every 15 s, and so does the stream); None for no limit.
        handshake_timeout: Seconds for the websocket upgrade and the SignalR handshake of
            each connection; None for no limit.
    """

    def __init__(
        self,
        hub: Hub,
        account_id: str,
        *,
        policy: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        reconnect: bool = True,
        server_timeout: float | None = DEFAULT_SERVER_TIMEOUT,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        self._hub = hub
        self.account_id = account_id
        """The account whose orders the stream follows."""
        self.reconnect = reconnect
        """Whether the stream connects again after the hub closed or the connection broke."""
        self.server_timeout = seconds("server_timeout", server_timeout)
        """Seconds of silence after which the hub counts as dead."""
        self.handshake_timeout = seconds("handshake_timeout", handshake_timeout)
        """Seconds for the upgrade and the SignalR handshake of each connection."""
        self._policy = policy if policy is not None else RetryPolicy()
        self._headers = dict(headers or {})
        self._connection: Connection | None = None
        self._snapshot: list[Any] | None = None
        self._entered = False

    @property
    def safe_url(self) -> str:
        """The hub URL without its query (which holds the token)."""
        return str(self._hub.url)

    def __repr__(self) -> str:
        return f"<OpenOrdersStream {self.safe_url} account_id={self.account_id!r}>"

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("an OpenOrdersStream can be entered only once")
        self._entered = True
        async with self._hub.transport.guard("the OpenOrders stream"):
            self._connection, self._snapshot = await self._connect(self._episode())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        self._snapshot = None
        if connection is not None:
            await connection.hang_up()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> OpenOrdersEvent:
        if not self._entered:
            raise RuntimeError("use the stream as `async with client.stream_open_orders() as s`")
        if self._snapshot is not None:
            records, self._snapshot = self._snapshot, None
            return self._event(records, is_snapshot=True)
        connection = self._connection
        if connection is None:  # ended (or left): nothing more will come
            raise StopAsyncIteration
        async with self._hub.transport.guard("the OpenOrders stream"):
            records, is_snapshot = await self._next_records(connection)
        return self._event(records, is_snapshot=is_snapshot)

    async def _next_records(self, connection: Connection) -> tuple[list[Any], bool]:
        """The next item's records, and whether they are a new connection's snapshot."""
        try:
            return await connection.next_item(None), False
        except Failure as exc:
            failure = exc
        self._connection = None
        await connection.hang_up()
        if not self.reconnect:
            if failure.graceful:
                raise StopAsyncIteration
            raise failure.error
        episode = self._episode()
        episode.attempts = 1  # the connection just lost was the first of this run
        await episode.again(failure, connection.header)
        self._connection, records = await self._connect(episode)
        return records, True

    async def _connect(self, episode: Episode) -> tuple[Connection, list[Any]]:
        return await first_item(
            self._hub,
            episode,
            account_id=self.account_id,
            headers=self._headers,
            server_timeout=self.server_timeout,
            handshake_timeout=self.handshake_timeout,
        )

    def _episode(self) -> Episode:
        return Episode(self._hub, self._policy, limit=self._policy.deadline)

    def _event(self, records: list[Any], *, is_snapshot: bool) -> OpenOrdersEvent:
        orders = _converter.structure_list(records, OpenOrder, path="item", url=self.safe_url)
        return OpenOrdersEvent(is_snapshot=is_snapshot, orders=tuple(orders))
