"""The live OpenOrders stream: the snapshot, then updates, from the account's SignalR hub.

The stream reconnects after a close that allows it or a lost connection, as the retry policy
allows (attempts, full-jitter backoff, the client's retry budget); the first event of every
connection is a fresh snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from ..errors import HubError
from ..models import OpenOrder, OpenOrdersEvent
from ..retry import RetryPolicy
from .connection import Connection
from .protocol import Failure
from .reconnect import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_SERVER_TIMEOUT,
    Episode,
    Hub,
    first_item,
    seconds,
)
from .report import typed
from .transport import reap

__all__ = ["OpenOrdersStream"]


class OpenOrdersStream:
    """The account's OpenOrders hub stream; each item is an `OpenOrdersEvent`.

    The first event is the snapshot of every open order (`is_snapshot`); later ones are updates
    (usually one order, with its new status). When the hub closes the connection and allows a
    new one (a deploy; `allowReconnect: true`, even with an error) or the connection is lost,
    the stream connects again as the client's retry policy allows, and the next event is a
    fresh snapshot. A wait you cancel (`asyncio.wait_for`, a watchdog) leaves the stream as it
    was: a reconnection in progress goes on, and the next `anext` gets its snapshot. Use as an
    async context manager and iterate; entering it connects and waits for the first snapshot:

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
        self.account_id: str = account_id
        """The account whose orders the stream follows."""
        self.reconnect: bool = reconnect
        """Whether the stream connects again after the hub closed or the connection broke."""
        self.server_timeout: float | None = seconds("server_timeout", server_timeout)
        """Seconds of silence after which the hub counts as dead."""
        self.handshake_timeout: float | None = seconds("handshake_timeout", handshake_timeout)
        """Seconds for the upgrade and the SignalR handshake of each connection."""
        self._policy = policy if policy is not None else RetryPolicy()
        self._headers = dict(headers or {})
        self._connection: Connection | None = None
        self._snapshot: list[Any] | None = None
        # Hangs up a connection that ended and connects again, apart from the caller's wait:
        # a cancelled wait does not stop it. `__aexit__` stops it and waits for it.
        self._recovery: asyncio.Task[None] | None = None
        self._ended: BaseException | None = None  # the error that ended the stream
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
        recovery, self._recovery = self._recovery, None
        if recovery is not None:
            await reap(recovery)
        connection, self._connection = self._connection, None
        self._snapshot = self._ended = None  # left: the iteration is simply over
        if connection is not None:
            await connection.hang_up()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> OpenOrdersEvent:
        if not self._entered:
            raise RuntimeError("use the stream as `async with client.stream_open_orders() as s`")
        if self._snapshot is not None:
            return self._event(self._take_snapshot(), is_snapshot=True)
        async with self._hub.transport.guard("the OpenOrders stream"):
            while True:
                if self._recovery is not None:
                    snapshot = await self._recovered(self._recovery)
                    if snapshot is not None:
                        return self._event(snapshot, is_snapshot=True)
                connection = self._connection
                if connection is None:
                    raise self._over()
                try:
                    records = await connection.next_item(None)
                except Failure as failure:
                    # No await from here until the task exists, so a cancelled caller cannot
                    # leave the stream without a connection and without a recovery.
                    self._connection = None
                    self._recovery = asyncio.create_task(
                        self._recover(connection, failure), name="frontoffice-hub-reconnect"
                    )
                    continue
                return self._event(records, is_snapshot=False)

    def _take_snapshot(self) -> list[Any]:
        records, self._snapshot = self._snapshot, None
        assert records is not None
        return records

    async def _recovered(self, recovery: asyncio.Task[None]) -> list[Any] | None:
        """Wait for the recovery (a cancelled wait leaves it running) and take the new
        connection's snapshot (None: the stream ended); raise its error once."""
        try:
            await asyncio.shield(recovery)
            records, self._snapshot = self._snapshot, None
            return records
        finally:
            if recovery.done():
                self._recovery = None
                if recovery.cancelled():
                    self._ended = HubError("the OpenOrders stream stopped while reconnecting")
                else:
                    self._ended = recovery.exception()

    def _over(self) -> Exception:
        """What a read of an ended stream raises: a graceful end stops the iteration; after an
        error (raised once already), a reminder of it, never a silent end."""
        error = self._ended
        if error is None:
            return StopAsyncIteration()
        return HubError(f"the OpenOrders stream has ended ({type(error).__name__}: {error})")

    async def _recover(self, connection: Connection, failure: Failure) -> None:
        """Hang up a connection that ended and, if the stream reconnects, connect again (the
        new snapshot waits in `_snapshot`); raise the error that ends the stream."""
        async with self._hub.transport.guard("the OpenOrders stream"):
            await connection.hang_up()
            if not self.reconnect:
                if failure.graceful:
                    return  # the iteration ends
                raise failure.error
            episode = self._episode()
            episode.attempts = 1  # the connection just lost was the first of this run
            await episode.again(failure, connection.credential)
            self._connection, self._snapshot = await self._connect(episode)

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
        secrets = self._hub.tokens.secrets
        orders = typed(records, OpenOrder, url=self.safe_url, secrets=secrets)
        return OpenOrdersEvent(is_snapshot=is_snapshot, orders=tuple(orders))
