"""Graceful shutdown: close() and serve_until_stopped(), as ASP.NET Core shuts a hub down."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import WSMsgType

from frontoffice_async.testing import FrontOfficeSimulator

from ..support import send_signal
from ._hubclient import Hub, hub_url, subscribe

GRACEFUL_CLOSE = {"type": 7, "allowReconnect": True}

# A process a supervisor stops with a signal, as `frontoffice simulate` may be.
SERVE_SCRIPT = """
import asyncio
from frontoffice_async.testing import FrontOfficeSimulator

async def main():
    sim = FrontOfficeSimulator(seed=1)
    await sim.start()
    sim.add_orders(2)
    print(sim.url, sim.token, flush=True)
    stopped_by = await sim.serve_until_stopped()
    print("stopped by", stopped_by.name if stopped_by else None, flush=True)

asyncio.run(main())
"""


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_a_signal_closes_hub_clients_gracefully_and_the_process_exits_0(
    session: aiohttp.ClientSession, sig: signal.Signals
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVE_SCRIPT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first_line = await asyncio.wait_for(process.stdout.readline(), timeout=20)
        url, token = first_line.decode().split()
        async with session.ws_connect(
            f"{url}/frontoffice/ws/v4/account?access_token={token}"
        ) as ws:
            hub = Hub(ws)
            await ws.send_str('{"protocol":"json","version":1}\x1e')
            assert await hub.next() == {}
            await ws.send_str(
                '{"type":4,"target":"OpenOrders","arguments":["685a7eaa360f9e7416221a61"],'
                '"invocationId":"0"}\x1e'
            )
            assert len((await hub.next())["item"]) == 2
            send_signal(process, sig)
            messages, end = await hub.until_closed(timeout=10)
        assert messages == [GRACEFUL_CLOSE]
        assert (end.type, end.data) == (WSMsgType.CLOSE, 1000)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
        assert process.returncode == 0, stderr.decode()
        assert stdout.decode().strip() == f"stopped by {sig.name}"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_serve_until_stopped_ends_with_close_and_restores_handlers(
    session: aiohttp.ClientSession,
) -> None:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    sim = FrontOfficeSimulator()
    serving = asyncio.create_task(sim.serve_until_stopped())
    while True:  # it starts the simulator itself, then installs its handlers
        await asyncio.sleep(0.001)
        if signal.getsignal(signal.SIGTERM) is not handlers[signal.SIGTERM]:
            break
    ws, hub = await subscribe(session, sim)
    async with ws:
        assert (await hub.next())["type"] == 2
        reader = asyncio.create_task(hub.until_closed())
        await sim.close()
        messages, end = await reader
    assert await serving is None  # stopped by close(), not by a signal
    assert messages == [GRACEFUL_CLOSE]
    assert (end.type, end.data) == (WSMsgType.CLOSE, 1000)
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers


async def test_cancelling_serve_until_stopped_closes_the_simulator() -> None:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    async with FrontOfficeSimulator() as sim:
        serving = asyncio.create_task(sim.serve_until_stopped(signals=[signal.SIGTERM]))
        await asyncio.sleep(0.01)
        assert signal.getsignal(signal.SIGINT) is handlers[signal.SIGINT]  # not asked for
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
        with pytest.raises(RuntimeError, match="not running"):
            _ = sim.url
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    with pytest.raises(RuntimeError, match="closed"):
        await sim.serve_until_stopped()


async def test_a_second_close_waits_for_the_first(session: aiohttp.ClientSession) -> None:
    sim = FrontOfficeSimulator()
    await sim.start()
    # A client that never answers the close keeps the first close() busy for its grace.
    ws = await session.ws_connect(hub_url(sim))
    await ws.send_str('{"protocol":"json","version":1}\x1e')
    assert (await ws.receive(timeout=2)).data == "{}\x1e"
    first = asyncio.create_task(sim.close())
    await asyncio.sleep(0.01)
    await sim.close()
    assert first.done()
    await first
    await ws.close()
