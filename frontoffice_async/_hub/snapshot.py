"""A snapshot from the account hub: the merge of the items of a short settle window.

Nothing documented says the hub sends a snapshot as exactly one item. A snapshot is the merge,
by id, of the items that arrive within `settle` seconds after the first (the latest state of
an id wins; a record that says it is final drops out); an error Completion inside that window
fails it. Each item is also handed to `on_item` as it arrives, so that work can start on the
first. A snapshot is never assumed: when the hub closes, completes, drops or goes quiet before
its first item, or the connection ends inside the window (what it sent may be partial), the
client connects again as the retry policy allows, within the snapshot's time limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from ..retry import RetryPolicy
from .protocol import OPEN_ORDERS, Failure, Late, StreamKind
from .reconnect import Episode, Hub, first_item, seconds

__all__ = ["DEFAULT_SETTLE", "Merge", "check_settle", "read_snapshot"]

#: Seconds after a snapshot's first item during which later items still belong to it.
DEFAULT_SETTLE = 0.5


async def read_snapshot(
    hub: Hub,
    account_id: str,
    *,
    timeout: float | None,
    settle: float | None = None,
    kind: StreamKind = OPEN_ORDERS,
    policy: RetryPolicy | None = None,
    headers: Mapping[str, str] | None = None,
    on_item: Callable[[list[Any]], object] | None = None,
) -> list[Any]:
    """The account's open records of one stream (`kind`), merged over the settle window.

    Connects again (as `policy` allows) when the hub ends, closes or goes quiet before the
    first item, or the connection ends inside the window; getting the first item may take
    `timeout` seconds (None: no limit), the window `settle` more (None: `DEFAULT_SETTLE`).
    Closing our side never waits for the hub. Raises `APITimeoutError` when time runs out,
    `HubError` when the hub failed the stream (also inside the window) or kept ending it, and
    the status or connection error of the last connection otherwise.
    """
    timeout = seconds("timeout", timeout)
    settle = DEFAULT_SETTLE if settle is None else check_settle(settle)
    loop = asyncio.get_running_loop()
    async with hub.transport.guard(f"the {kind.target} snapshot"):
        episode = Episode(hub, policy, limit=timeout, target=kind.target)
        while True:
            connection, records = await first_item(
                hub,
                episode,
                account_id=account_id,
                headers=headers or {},
                server_timeout=hub.server_timeout,
                handshake_timeout=hub.handshake_timeout,
                kind=kind,
            )
            merge = Merge(kind)
            window_end = loop.time() + settle
            try:
                while True:
                    merge.add(records)
                    if on_item is not None:
                        on_item(records)
                    records = await connection.next_item(window_end)
            except Late:
                break  # the window closed: the snapshot is complete
            except Failure as failure:
                if failure.timed_out:
                    break  # silence: nothing more came (a hub pings long before it counts)
                await connection.hang_up()
                if not failure.retry:
                    raise failure.error from None  # an error Completion fails the snapshot
                await episode.again(failure, connection.credential)
            except BaseException:
                await connection.hang_up()
                raise
    # Outside the time limit: the snapshot is ours, and hanging up cannot take it back.
    await connection.hang_up()
    return merge.records()


def check_settle(settle: object) -> float:
    """A settle window: seconds >= 0 and finite."""
    if isinstance(settle, bool) or not isinstance(settle, int | float):
        raise TypeError(f"snapshot_settle must be a number of seconds, got {settle!r}")
    if not 0 <= settle < float("inf"):
        raise ValueError(f"snapshot_settle must be >= 0 seconds and finite, got {settle!r}")
    return float(settle)


class Merge:
    """The records of a snapshot's items, by id: the latest state of an id wins."""

    __slots__ = ("_by_id", "_kind", "_unreadable")

    def __init__(self, kind: StreamKind) -> None:
        self._kind = kind
        self._by_id: dict[str, Any] = {}
        self._unreadable: list[Any] = []

    def add(self, records: list[Any]) -> None:
        """Take an item's records in (a later one replaces an earlier one of the same id)."""
        key = self._kind.key
        by_id = self._by_id
        for record in records:
            record_id = record.get(key) if isinstance(record, dict) else None
            if isinstance(record_id, str) and record_id.strip():
                by_id[record_id] = record
            else:
                self._unreadable.append(record)  # no id to merge by: reported as it is

    def records(self) -> list[Any]:
        """The open records, in the order their ids first appeared, and the unreadable ones."""
        closed = self._kind.is_closed
        return [r for r in self._by_id.values() if not closed(r)] + self._unreadable
