"""The bearer and offline tokens never appear in anything the library produces."""

from __future__ import annotations

import logging

import pytest

from frontoffice_async import (
    FrontOfficeClient,
    FrontOfficeError,
    OfflineTokenAuth,
    RetryEvent,
    RetryPolicy,
)
from frontoffice_async.testing import Fault, FaultPlan, FrontOfficeSimulator

TOKEN = "eyJhbGciOiJub25lIn0.SENTINEL-BEARER-91f3.sig"
OFFLINE = "SENTINEL-OFFLINE-5d2a"


async def test_no_string_the_library_produces_holds_a_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    produced: list[str] = []
    events: list[RetryEvent] = []

    async def no_sleep(_: float) -> None:
        return None

    caplog.set_level(logging.DEBUG)  # every logger, aiohttp's included
    async with FrontOfficeSimulator(token=TOKEN, offline_token=OFFLINE) as sim:
        ids = sim.add_orders(3)
        sim.faults = FaultPlan(
            scripts={
                ids[0]: [Fault.unavailable(), Fault.reset(), None],
                ids[1]: [Fault.bad_gateway()] * 4,
                ids[2]: [Fault.slow(1.0)] * 4,
            }
        )
        for token in (TOKEN, OfflineTokenAuth(OFFLINE)):
            client = FrontOfficeClient(
                sim.url,
                token=token,
                account_id=sim.account_ids[0],
                retry=RetryPolicy(base_delay=0.001, deadline=2.0),
                timeout=0.05,
                on_retry=events.append,
                sleep=no_sleep,
            )
            produced += [repr(client), str(client), repr(client._tokens)]
            if isinstance(token, OfflineTokenAuth):
                produced += [repr(token), str(token)]
            async with client:
                result = await client.cancel_orders([*ids, "missing", ""])
                produced += [repr(result)]
                for outcome in result:
                    produced += [repr(outcome), str(outcome.error), repr(outcome.error)]
                try:
                    result.raise_for_failures()
                except FrontOfficeError as group:
                    produced += [str(group), repr(group)]
                for bad_account in ("ffffffffffffffffffffffff",):
                    try:
                        await client.cancel_order(ids[0], account_id=bad_account)
                    except FrontOfficeError as error:
                        produced += [str(error), repr(error), repr(error.__dict__)]
                    try:
                        await client.open_orders(account_id=bad_account)
                    except FrontOfficeError as error:
                        produced += [str(error), repr(error)]
                produced += [repr(o) for o in await client.open_orders()]
        async with FrontOfficeClient(sim.url, token="revoked-" + TOKEN, account_id="a") as bad:
            for call in (bad.list_accounts(), bad.open_orders()):
                try:
                    await call
                except FrontOfficeError as error:
                    produced += [str(error), repr(error), repr(error.__dict__)]
    produced += [repr(e) for e in events]
    produced += [r.getMessage() for r in caplog.records]
    produced += [caplog.text]
    assert events, "the scenario must have retried"
    assert any(r.name == "frontoffice_async" for r in caplog.records)
    for text in produced:
        assert TOKEN not in text
        assert "SENTINEL-BEARER" not in text
        assert OFFLINE not in text
