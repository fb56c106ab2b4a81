"""A snapshot is the merge of a settle window (issue 19, item 3), on a scripted hub.

Nothing documented says the hub sends a snapshot as one item: an empty item first, pages, an
update before the snapshot, or an error right after the first item must not read as a smaller
(or empty) book.
"""

from __future__ import annotations

from typing import Any

import pytest

from frontoffice_async import FrontOfficeClient, HubError
from frontoffice_async._hub.protocol import OPEN_ORDERS, OPEN_POSITIONS
from frontoffice_async._hub.snapshot import Merge
from frontoffice_async.testing import DEFAULT_ACCOUNT_ID

from .._scripted_hub import CLOSE, Conn, ScriptedHubs, item, message, open_order
from ..support import Sleeps

IDS = [f"01K2PF9XS29WN4JZRHMCTTQY{n:02d}" for n in range(10)]
WINDOW = 0.2  # seconds: the items of these scripts come 10 ms apart, or 0.5 s after


def client(url: str, settle: float = WINDOW) -> FrontOfficeClient:
    return FrontOfficeClient(
        url, token="tok", account_id=DEFAULT_ACCOUNT_ID, sleep=Sleeps(), snapshot_settle=settle
    )


def orders(*ids: str, status: str = "Pending") -> list[dict[str, Any]]:
    return [{**open_order(i), "status": status} for i in ids]


async def snapshot_ids(hubs: ScriptedHubs, *conns: Conn, settle: float = WINDOW) -> list[str]:
    script = await hubs.start(*conns)
    async with client(script.url, settle) as c:
        return [o.order_id for o in await c.open_orders(timeout=5)]


SHAPES = [
    pytest.param([item([]), 0.01, item(orders(*IDS))], IDS, id="empty-first"),
    pytest.param(
        [item(orders(*IDS[:4])), 0.01, item(orders(*IDS[4:7])), 0.01, item(orders(*IDS[7:]))],
        IDS,
        id="pages",
    ),
    pytest.param(
        [item(orders(IDS[0], status="Working")), 0.01, item(orders(*IDS))], IDS, id="update-first"
    ),
    pytest.param(
        [item(orders(*IDS[:3])), 0.01, item(orders(IDS[1], status="Cancelled"))],
        [IDS[0], IDS[2]],
        id="latest-state-wins",
    ),
    pytest.param(
        [item(orders(*IDS[:2])), 0.01, item(orders(IDS[0], status="PendingCancel"))],
        IDS[:2],
        id="an-unknown-status-counts-as-open",
    ),
    pytest.param([item(orders(*IDS[:2])), 0.5, item(orders(*IDS[2:]))], IDS[:2], id="too-late"),
]


@pytest.mark.parametrize(("frames", "expected"), SHAPES)
async def test_a_snapshot_merges_the_items_of_its_window(
    hubs: ScriptedHubs, frames: list[str | bytes | float], expected: list[str]
) -> None:
    assert await snapshot_ids(hubs, Conn(frames)) == expected


async def test_an_error_completion_inside_the_window_fails_the_snapshot(
    hubs: ScriptedHubs,
) -> None:
    failure = message({"type": 3, "invocationId": "0", "error": "Stream failed: boom"})
    with pytest.raises(HubError, match="boom"):
        await snapshot_ids(hubs, Conn([item(orders(*IDS)), 0.01, failure]))


async def test_a_connection_that_ends_inside_the_window_is_read_again(
    hubs: ScriptedHubs,
) -> None:
    first = Conn([item(orders(*IDS[:3])), 0.01, CLOSE])  # a page, then a deploy
    assert await snapshot_ids(hubs, first, Conn([item(orders(*IDS))])) == IDS


async def test_items_already_received_belong_to_a_window_of_zero(hubs: ScriptedHubs) -> None:
    both = item(orders(*IDS[:5]))[:-1] + "\x1e" + item(orders(*IDS[5:]))  # one websocket frame
    assert await snapshot_ids(hubs, Conn([both]), settle=0.0) == IDS


def test_positions_close_with_a_closed_status_or_no_lots() -> None:
    merge = Merge(OPEN_POSITIONS)
    open_one = {"positionId": "P1", "status": "Always Open", "positionLotAmount": "0.1"}
    merge.add([open_one, {"positionId": "P2", "status": "Always Open"}, {"bad": 1}])
    merge.add([{"positionId": "P2", "status": "Closed", "positionLotAmount": "0"}])
    merge.add([{"positionId": "P3", "status": "Always Open", "positionLotAmount": "0"}])
    assert merge.records() == [open_one, {"bad": 1}]  # the record without an id is kept


def test_orders_merge_by_id_in_first_seen_order() -> None:
    merge = Merge(OPEN_ORDERS)
    merge.add([{"orderId": "B", "status": "Pending"}, {"orderId": "A", "status": "Pending"}])
    merge.add([{"orderId": "B", "status": "Working"}, {"orderId": "A", "status": "Expired"}])
    assert merge.records() == [{"orderId": "B", "status": "Working"}]
