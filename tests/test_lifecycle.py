"""Long-lived use: web-backend recipes, many open/close cycles, no leaked tasks or sessions."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import test_utils, web

from frontoffice_async import FrontOfficeClient
from frontoffice_async.testing import FrontOfficeSimulator

CLIENT_KEY = web.AppKey("frontoffice", FrontOfficeClient)


async def test_aiohttp_cleanup_ctx_recipe(frontoffice_simulator: FrontOfficeSimulator) -> None:
    sim = frontoffice_simulator
    made: list[FrontOfficeClient] = []

    async def frontoffice_ctx(app: web.Application) -> AsyncIterator[None]:
        async with FrontOfficeClient(
            sim.url, token=sim.token, account_id=sim.account_ids[0]
        ) as client:
            app[CLIENT_KEY] = client
            made.append(client)
            yield

    async def cancel(request: web.Request) -> web.Response:
        order = await request.app[CLIENT_KEY].cancel_order(request.match_info["id"])
        return web.json_response({"status": order.status})

    app = web.Application()
    app.cleanup_ctx.append(frontoffice_ctx)
    app.router.add_post("/cancel/{id}", cancel)
    ids = sim.add_orders(20)
    async with test_utils.TestClient(test_utils.TestServer(app)) as http:
        responses = await asyncio.gather(*(http.post(f"/cancel/{i}") for i in ids))
        bodies = [await r.json() for r in responses]
    assert bodies == [{"status": "Cancelled"}] * 20
    assert made[0].closed  # the app's cleanup closed it
    assert sim.open_order_ids() == []


async def test_no_task_outlives_the_client(frontoffice_simulator: FrontOfficeSimulator) -> None:
    sim = frontoffice_simulator
    before = asyncio.all_tasks()
    ids = sim.add_orders(50)
    async with FrontOfficeClient(sim.url, token=sim.token, account_id=sim.account_ids[0]) as c:
        await c.cancel_orders(ids, concurrency=8)
        async for _ in c.iter_cancel_orders(["missing-1", "missing-2"]):
            pass
        await c.open_orders()
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before == set()


async def test_thousands_of_open_close_cycles_leak_nothing(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator

    async def cycle() -> None:
        async with FrontOfficeClient(sim.url, token=sim.token, account_id="a") as client:
            await client.list_accounts()

    for _ in range(50):  # warm caches and pools before measuring
        await cycle()
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for _ in range(2000):
            await cycle()
        await asyncio.sleep(0)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    # The simulator keeps a log entry per request (~2000 records): allow for that, and
    # nothing like the ~100 KiB per cycle a leaked session and connector would cost.
    assert grown < 2 * 1024 * 1024, grown
    alive = [
        o for o in gc.get_objects() if isinstance(o, FrontOfficeClient | aiohttp.ClientSession)
    ]
    assert alive == []
