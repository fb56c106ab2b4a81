"""A snapshot from the account hub: the first item of a stream, never assumed.

When the hub closes, completes, drops or goes quiet before its first item, the client connects
again as the retry policy allows (attempts, full-jitter backoff, the client's retry budget)
within the snapshot's time limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..retry import RetryPolicy
from .reconnect import Episode, Hub, first_item, seconds

__all__ = ["read_snapshot"]


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
