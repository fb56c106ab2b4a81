"""The bearer and offline tokens never appear in anything the library produces: reprs, logs,
retry events, and every error, its causes, contexts, arguments, notes and traceback."""

from __future__ import annotations

import asyncio
import logging

import attrs
import pytest

from frontoffice_async import (
    FrontOfficeClient,
    FrontOfficeError,
    OfflineTokenAuth,
    RetryEvent,
    RetryPolicy,
)
from frontoffice_async.testing import Fault, FaultPlan, FrontOfficeSimulator

from .support import FAST, assert_secret_absent, no_sleep

TOKEN = "eyJhbGciOiJub25lIn0.SENTINEL-BEARER-91f3.sig"
OFFLINE = "SENTINEL-OFFLINE-5d2a"
SECRETS = (TOKEN, "SENTINEL-BEARER", OFFLINE)


async def provoke(client: FrontOfficeClient, ids: list[str]) -> list[BaseException]:
    """Every kind of error a client call can end in, with this client."""
    errors: list[BaseException] = []

    async def catch(call: object) -> None:
        try:
            await call  # type: ignore[misc]
        except (FrontOfficeError, RuntimeError, ValueError, TypeError) as error:
            errors.append(error)

    result = await client.cancel_orders([*ids, "missing", "", "a\nb"])
    errors += [o.error for o in result if o.error is not None]
    await catch(asyncio.to_thread(result.raise_for_failures))
    for bad_account in ("ffffffffffffffffffffffff", "bad\r\naccount"):
        await catch(client.cancel_order(ids[0], account_id=bad_account))
        await catch(client.open_orders(account_id=bad_account))
    await catch(client.with_options(retry=RetryPolicy(deadline=0.01)).cancel_order(ids[-1]))
    return errors


async def test_no_string_the_library_produces_holds_a_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    produced: list[str] = []
    errors: list[BaseException] = []
    events: list[RetryEvent] = []
    caplog.set_level(logging.DEBUG)  # every logger, aiohttp's included
    async with FrontOfficeSimulator(token=TOKEN, offline_token=OFFLINE) as sim:
        ids = sim.add_orders(4)
        sim.faults = FaultPlan(
            scripts={
                ids[0]: [Fault.unavailable(), Fault.reset(), None],
                ids[1]: [Fault.bad_gateway()] * 4,
                ids[2]: [Fault.slow(1.0)] * 4,
                ids[3]: [Fault.malformed()] + [Fault.slow(1.0)] * 4,
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
            produced += [repr(client), str(client)]
            if isinstance(token, OfflineTokenAuth):
                produced += [repr(token), str(token)]
            async with client:
                errors += await provoke(client, ids)
                produced += [repr(o) for o in await client.open_orders()]
        for bad in ("revoked-" + TOKEN, OfflineTokenAuth("wrong-" + OFFLINE)):
            async with FrontOfficeClient(sim.url, token=bad, account_id="a", retry=FAST) as c:
                for call in (c.list_accounts(), c.open_orders()):
                    try:
                        await call
                    except FrontOfficeError as refused:
                        errors.append(refused)
                outcomes = await c.cancel_orders(ids)
                errors += [o.error for o in outcomes if o.error is not None]
        closed = FrontOfficeClient(sim.url, token=TOKEN, account_id="a")
        await closed.close()
        with pytest.raises(RuntimeError) as after_close:
            await closed.cancel_order(ids[0])
        errors.append(after_close.value)
    produced += [repr(e) for e in events] + [repr(attrs.asdict(e)) for e in events]
    produced += [r.getMessage() for r in caplog.records] + [caplog.text]
    assert events, "the scenario must have retried"
    assert len({type(e).__name__ for e in errors}) >= 10, {type(e).__name__ for e in errors}
    for error in errors:
        assert_secret_absent(error, *SECRETS)
    for text in produced:
        for secret in SECRETS:
            assert secret not in text
