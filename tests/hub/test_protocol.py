"""The framing of hub messages, and the large-message path (issue 23, item 5): a snapshot of
thousands of orders is parsed where it lies, with its short strings shared, and reads exactly
as a small one does."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from frontoffice_async import FrontOfficeClient
from frontoffice_async._hub import protocol
from frontoffice_async._hub.protocol import LARGE, RS
from frontoffice_async.testing import DEFAULT_ACCOUNT_ID

from .._scripted_hub import PING, Conn, ScriptedHubs, open_order
from ..support import Sleeps


def big_item(count: int) -> dict[str, Any]:
    ids = [f"01K2PF9XS29WN4JZRHM{n:07d}" for n in range(count)]
    return {"type": 2, "invocationId": "0", "item": [open_order(i) for i in ids]}


def large_text() -> str:
    count = LARGE // len(json.dumps(open_order())) + 10
    text = json.dumps(big_item(count))
    assert len(text) >= LARGE
    return text


def test_a_large_message_reads_as_a_small_one_with_its_short_strings_shared() -> None:
    text = large_text()
    small = json.loads(text, parse_float=Decimal)
    for raw in (text, text + RS, f" \n{text} {RS}"):
        message = protocol.parse_message(raw)
        assert message == small
    records = message["item"]
    # One object for each repeated value: the memory of 100,000 orders is what it saves.
    assert records[0]["status"] is records[-1]["status"]
    assert records[0]["createdAt"] is records[-1]["createdAt"]
    assert records[0]["orderId"] != records[-1]["orderId"]


@pytest.mark.parametrize(
    "tail", [pytest.param("{}", id="a-second-value"), pytest.param(RS + "x", id="after-the-RS")]
)
def test_a_large_message_with_anything_after_it_is_not_json(tail: str) -> None:
    with pytest.raises(ValueError, match="not JSON"):
        protocol.parse_message(large_text() + tail)


def test_a_large_message_that_is_not_an_object_is_said_so() -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        protocol.parse_message(json.dumps([big_item(1)] * (LARGE // 500)))


def test_one_frame_is_a_message_whose_only_separator_ends_it() -> None:
    assert protocol.is_one_frame("{}" + RS)
    assert not protocol.is_one_frame("{}" + RS + "{}" + RS)
    assert not protocol.is_one_frame("{}")


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param(lambda text: [text + RS], id="one-frame"),
        pytest.param(lambda text: [text + RS + PING], id="with-a-ping-after"),
    ],
)
async def test_a_snapshot_over_a_mebibyte_reads_whole_over_the_hub(
    hubs: ScriptedHubs, frames: Any
) -> None:
    text = large_text()
    expected = [r["orderId"] for r in json.loads(text)["item"]]
    script = await hubs.start(Conn(frames=frames(text)))
    async with FrontOfficeClient(
        script.url, token="tok", account_id=DEFAULT_ACCOUNT_ID, sleep=Sleeps(), snapshot_settle=0
    ) as client:
        orders = await client.open_orders(timeout=10)
    assert [o.order_id for o in orders] == expected
