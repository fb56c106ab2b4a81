"""The client's life: lazy session, close (also mid-call), borrowed sessions, event loops,
web-backend recipes, and many open/close cycles without a leaked task or session."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
import warnings

import aiohttp
import pytest

from frontoffice_async import ClientClosedError, FrontOfficeClient, Order
from frontoffice_async.testing import FrontOfficeSimulator
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

from .support import client_for, library_tasks


async def test_no_task_outlives_the_client(sim: FrontOfficeSimulator) -> None:
    ids = sim.add_orders(50)
    async with client_for(sim) as client:
        await client.cancel_orders(ids, concurrency=8)
        async for _ in client.iter_cancel_orders(["missing-1", "missing-2"]):
            pass
        await client.open_orders()
        async with client.stream_open_orders() as stream:
            await anext(stream)
    await asyncio.sleep(0)
    assert library_tasks() == []  # the simulator's own server tasks are not the client's


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


# --- close, borrowed sessions, loops ------------------------------------------------------------


async def test_close_is_idempotent_and_calls_after_close_fail(sim: FrontOfficeSimulator) -> None:
    client = FrontOfficeClient(sim.url, token=sim.token, account_id=sim.account_ids[0])
    await client.list_accounts()
    await client.close()
    await client.close()
    assert client.closed
    with pytest.raises(RuntimeError, match="closed"):
        await client.cancel_order("X")
    with pytest.raises(RuntimeError, match="closed"):
        await client.list_accounts()


async def test_borrowed_session_is_left_open(sim: FrontOfficeSimulator) -> None:
    async with aiohttp.ClientSession() as session:
        [order_id] = sim.add_orders(1)
        async with FrontOfficeClient(
            sim.url, token=sim.token, account_id=sim.account_ids[0], session=session
        ) as client:
            await client.cancel_order(order_id)
        assert not session.closed
        async with session.get(sim.url + "/frontoffice/api/v3/accounts") as response:
            assert response.status == 401  # still usable, and it never got our token


async def test_no_session_before_first_use_and_none_left_unclosed(
    sim: FrontOfficeSimulator,
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(20):
            async with FrontOfficeClient(sim.url, token=sim.token, account_id="a") as client:
                await client.list_accounts()
        never_used = FrontOfficeClient(sim.url, token=sim.token)
        await never_used.close()
        del client, never_used
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_use_from_another_event_loop_is_a_clear_error(sim: FrontOfficeSimulator) -> None:
    async with FrontOfficeClient(sim.url, token=sim.token, account_id="a") as client:
        await client.list_accounts()

        async def elsewhere() -> None:
            await client.list_accounts()

        with pytest.raises(RuntimeError, match="another event loop"):
            await asyncio.to_thread(asyncio.run, elsewhere())


async def test_close_with_single_calls_in_flight_lets_them_finish(
    frontoffice_simulator_factory: SimulatorFactory,
) -> None:
    sim = await frontoffice_simulator_factory(latency=0.05)
    ids = sim.add_orders(50)
    client = client_for(sim)
    calls = [asyncio.create_task(client.cancel_order(i)) for i in ids]
    await asyncio.sleep(0.02)  # all 50 on the wire
    await client.close()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, Order) for r in results), results  # no AssertionError from aiohttp
    with pytest.raises(RuntimeError, match="closed"):
        await client.cancel_order(ids[0])


async def test_a_call_after_close_is_a_runtime_error_that_sent_nothing(
    sim: FrontOfficeSimulator,
) -> None:
    client = client_for(sim)
    await client.list_accounts()
    await client.close()
    for call in (client.list_accounts(), client.cancel_orders(["X"]), client.open_orders()):
        with pytest.raises(ClientClosedError, match="closed") as caught:
            await call
        assert isinstance(caught.value, RuntimeError)
    assert len(sim.requests) == 1
