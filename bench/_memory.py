"""Memory of a large snapshot: 100,000 open orders read from the hub and selected for cancel-all.

The simulator runs in a process of its own, so that only the client's allocations are traced.
First a raw websocket reads the snapshot once to learn its size (the text of its stream items,
as the hub sent them). Then, under `tracemalloc`, the library reads the same snapshot the way a
cancel-all pass does (`read_snapshot`: the websocket, the frames, the merge over the settle
window) and selects its ids on the tolerant path (`select`: ids only, no typed records). The
figure is the traced peak over that whole path divided by the snapshot's JSON size; the target
is under 3.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
import tracemalloc
from typing import Any, Final

import aiohttp

from frontoffice_async import FrontOfficeClient
from frontoffice_async._stop.cancel_all import select

from ._flatten import _simulator

__all__ = ["measure_snapshot_memory"]

_RS: Final = "\x1e"
_HUB_PATH: Final = "/frontoffice/ws/v4/account"
_HANDSHAKE: Final = '{"protocol":"json","version":1}' + _RS
#: The target: the traced peak under this many times the snapshot's JSON size.
TARGET: Final = 3.0


async def _snapshot_size(about: dict[str, Any]) -> int:
    """Characters of the snapshot's stream items, as the hub sends them (read by hand)."""
    account = about["accounts"][0]
    invocation = {"type": 4, "target": "OpenOrders", "arguments": [account], "invocationId": "0"}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            about["url"].replace("http", "ws", 1) + _HUB_PATH,
            params={"access_token": about["token"]},
            max_msg_size=0,
        ) as ws,
    ):
        await ws.send_str(_HANDSHAKE)
        await ws.send_str(json.dumps(invocation) + _RS)
        while True:
            frame = await asyncio.wait_for(ws.receive(), 30)
            if frame.type is not aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"the hub sent {frame.type!r}")
            for part in frame.data.split(_RS):
                if part and json.loads(part).get("type") == 2:
                    return len(part)  # the simulator sends the snapshot as one item


async def _library_peak(about: dict[str, Any]) -> tuple[int, int, float]:
    """The traced peak (bytes) of reading and selecting the snapshot, the ids selected, and
    the seconds it took."""
    account = about["accounts"][0]
    async with FrontOfficeClient(about["url"], token=about["token"], account_id=account) as client:
        await client.list_accounts()  # the session and the token, warm and outside the trace
        ops = client._binder(32, 60.0).account(account)
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            started = time.perf_counter()
            records = await ops.orders_snapshot(None)
            selection = select(records, None, None)
            seconds = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    return peak, len(selection.ids), seconds


def measure_snapshot_memory(orders: int = 100_000) -> dict[str, Any]:
    """The traced peak of a cancel-all's snapshot selection over `orders` open orders, as a
    ratio of the snapshot's JSON size (target: under `TARGET`)."""
    book = {"accounts": 1, "orders": orders, "stops": 0, "positions": 0, "latency": 0.0}
    with _simulator(**book) as (about, _):
        size = asyncio.run(_snapshot_size(about))
        peak, selected, seconds = asyncio.run(_library_peak(about))
    if selected != orders:
        raise RuntimeError(f"selected {selected} ids of {orders}")
    ratio = peak / size
    return {
        "orders": orders,
        "json_bytes": size,
        "peak_bytes": peak,
        "ratio": ratio,
        "seconds_traced": seconds,
        "target": TARGET,
        "passed": ratio < TARGET,
    }


if __name__ == "__main__":
    print(json.dumps(measure_snapshot_memory(), indent=2))
