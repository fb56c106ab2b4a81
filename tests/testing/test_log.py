"""The request log's headers and bodies (issue 20.8): what the client sent, tokens hidden."""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio

from frontoffice_async.testing import (
    DEFAULT_ACCOUNT_ID,
    Fault,
    FaultKind,
    FaultPlan,
    FrontOfficeSimulator,
)
from frontoffice_async.testing._capture import MAX_BODY_CHARS, Capture
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

from ._hubclient import HANDSHAKE, ORDERS, Hub, auth, hub_url

EXCHANGE = "/frontoffice/api/v4/access-token"
OFFLINE = "offline-0123456789abcdef"
LIMIT_ORDER = {
    "order": {
        "marketId": "spot.eth_usdt",
        "side": "Buy",
        "orderType": "Limit",
        "timeInForce": "Gtc",
        "requestedAmount": "0.1",
        "requestedPrice": "4400",
    }
}


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def test_headers_are_kept_with_the_token_hidden(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    order_id = sim.add_orders(1)[0]
    headers = {
        **auth(sim),
        "Content-Type": "application/json; x-api-version=4.0",
        "X-Debug": f"token={sim.token}; encoded={quote(sim.token + '/', safe='')}",
    }
    async with session.delete(f"{sim.url}{ORDERS}/{order_id}", headers=headers) as resp:
        assert resp.status == 200
    record = sim.requests[-1]
    assert record.headers["Authorization"] == "Bearer [hidden]"
    assert record.headers["accountid"] == DEFAULT_ACCOUNT_ID  # case-insensitive, as HTTP
    assert record.headers["Content-Type"] == "application/json; x-api-version=4.0"
    assert record.headers["X-Debug"] == "token=[hidden]; encoded=[hidden]%2F"
    assert record.body is None  # a DELETE carries none
    with pytest.raises(TypeError):
        record.headers["accountId"] = "other"  # type: ignore[index]
    assert sim.token not in repr(record)
    assert record.token == sim.token  # kept, out of repr()


@pytest.mark.parametrize(
    ("value", "logged"),
    [
        ("Bearer sim-secret", "Bearer [hidden]"),
        ("bearer   sim-secret", "bearer [hidden]"),
        ("sim-secret", "[hidden]"),  # no scheme: the whole value may be the token
        ("Weird/Scheme sim-secret", "[hidden]"),
    ],
)
def test_every_authorization_value_is_hidden(value: str, logged: str) -> None:
    headers = Capture().headers({"Authorization": value}, ["sim-secret"])
    assert headers["Authorization"] == logged


async def test_the_hub_upgrade_hides_its_access_token(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    referer = f"{sim.url}/page?access_token={sim.token}"
    async with session.ws_connect(hub_url(sim), headers={"Referer": referer}) as ws:
        await ws.send_str(HANDSHAKE)
        assert await Hub(ws).next() == {}
    record = sim.requests[0]
    assert record.headers["Referer"] == f"{sim.url}/page?access_token=[hidden]"
    assert record.headers["Upgrade"] == "websocket"
    assert sim.token not in repr(record)
    assert (record.body, record.path) == (None, "/frontoffice/ws/v4/account")


async def test_post_bodies_are_kept_even_when_a_fault_answers(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await frontoffice_simulator_factory(faults=FaultPlan(sequence=[Fault.rate_limited()]))
    for expected in (429, 200):
        async with session.post(f"{sim.url}{ORDERS}", headers=auth(sim), json=LIMIT_ORDER) as r:
            assert r.status == expected
    first, second = sim.requests
    assert first.fault is FaultKind.RATE_LIMITED
    assert json.loads(first.body or "") == LIMIT_ORDER
    assert second.body == first.body
    assert second.body is first.body  # one string for both records


async def test_the_offline_token_is_hidden_in_the_exchange_body(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await frontoffice_simulator_factory(offline_token=OFFLINE)
    async with session.post(f"{sim.url}{EXCHANGE}", json={"token": OFFLINE}) as resp:
        assert resp.status == 200
    record = sim.requests[0]
    assert record.body == '{"token": "[hidden]"}'
    assert OFFLINE not in repr(record)


async def test_bodies_are_clipped_after_masking(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    # The token straddles the clip: masked first, so no half of it survives.
    body = "x" * (MAX_BODY_CHARS - 5) + sim.token + "y" * 100_000
    async with session.post(f"{sim.url}{ORDERS}", headers=auth(sim), data=body) as resp:
        assert resp.status == 400
    logged = sim.requests[0].body
    assert logged is not None
    assert len(logged) == MAX_BODY_CHARS
    assert logged.endswith("x" + "[hidden]"[:5])
    assert sim.token[:5] not in logged
    # Bytes that are not UTF-8 are replaced, never an error.
    async with session.post(f"{sim.url}{ORDERS}", headers=auth(sim), data=b"\xff{") as resp:
        assert resp.status == 400
    assert sim.requests[1].body == "\ufffd{"


async def test_a_long_log_shares_identical_headers(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    url = f"{sim.url}/frontoffice/api/v3/accounts"
    async with session.get(url, headers=auth(sim)) as resp:  # warm up: the first set is kept
        assert resp.status == 200
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(300):
            async with session.get(url, headers=auth(sim)) as resp:
                assert resp.status == 200
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    records = sim.requests
    assert all(record.headers is records[0].headers for record in records)
    # A record costs its entry, not a copy of its headers (measured: about 0.5 KiB).
    assert grown / 300 < 1024
