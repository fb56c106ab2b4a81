"""A client that leaves before its answer is the simulator's everyday life, never an error.

Issue 19.15: a client that gave up during a slow hub upgrade (a SLOW fault, a proxy's delay)
made aiohttp log "Error handling request" with a `ConnectionResetError` traceback, which
test runs printed on stderr as if the simulator had failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from frontoffice_async.testing import Fault, FaultKind, FaultPlan, FrontOfficeSimulator
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

from ._hubclient import HANDSHAKE, Hub, auth, hub_url

# The SLOW fault's delay; the client leaves as soon as the simulator has its request.
_DELAY = 0.1


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def _leave_early(sim: FrontOfficeSimulator, connecting: asyncio.Task[Any]) -> None:
    """Cancel `connecting` (which closes its connection) once the simulator logged it."""
    for _ in range(1000):
        if sim.requests:
            break
        await asyncio.sleep(0.001)
    connecting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await connecting


async def test_a_client_leaving_a_slow_hub_upgrade_logs_nothing(
    session: aiohttp.ClientSession,
    frontoffice_simulator_factory: SimulatorFactory,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = FaultPlan(endpoints={"hub"}, sequence=[Fault.slow(_DELAY)])
    sim = await frontoffice_simulator_factory(faults=plan)
    with caplog.at_level(logging.DEBUG):
        await _leave_early(sim, asyncio.create_task(session.ws_connect(hub_url(sim))))
        await asyncio.sleep(_DELAY * 2)  # the handler wakes up and finds the client gone
        # The simulator still serves the next client.
        async with session.ws_connect(hub_url(sim)) as ws:
            await ws.send_str(HANDSHAKE)
            assert await Hub(ws).next() == {}
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "Traceback" not in capsys.readouterr().err
    first = sim.requests[0]
    assert (first.endpoint, first.status, first.fault) == ("hub", None, FaultKind.SLOW)


async def test_a_client_leaving_a_slow_rest_request_logs_nothing(
    session: aiohttp.ClientSession,
    frontoffice_simulator_factory: SimulatorFactory,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = await frontoffice_simulator_factory(latency=_DELAY)
    order_id = sim.add_orders(1)[0]
    url = f"{sim.url}/frontoffice/api/v3/orders/{order_id}"
    with caplog.at_level(logging.DEBUG):
        await _leave_early(sim, asyncio.create_task(session.delete(url, headers=auth(sim))))
        await asyncio.sleep(_DELAY * 2)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "Traceback" not in capsys.readouterr().err
