"""The bearer and offline tokens never appear in anything the library produces: reprs, logs,
retry events, and every error, its causes, contexts, arguments, notes and traceback."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from urllib.parse import quote

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
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

from ._rawserver import RawServer, http
from .support import (
    FAST,
    SENTINEL_TOKEN,
    assert_secret_absent,
    client_for,
    errors_in,
    no_sleep,
)

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


ECHO_TOKEN = "tok-ECHO+SENTINEL/7f3a=9&x%41"  # characters that URL-encoding changes


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (401, b'{"detail": "token rejected: Bearer @TOKEN@"}', {}),
        (400, b"<html><title>bad request for /x?access_token=@QUOTED@</title></html>", {}),
        (500, b'{"title": "oops", "traceId": "@TOKEN@"}', {"WWW-Authenticate": "Bearer @TOKEN@"}),
        (200, b'{"order": {"orderId": "@TOKEN@"}}', {}),  # a 2xx that is not an order
    ],
)
async def test_a_server_that_echoes_the_token_never_gets_it_shown(
    frontoffice_simulator_factory: SimulatorFactory,
    status: int,
    body: bytes,
    headers: dict[str, str],
) -> None:
    sim = await frontoffice_simulator_factory(token=ECHO_TOKEN)
    echoed = body.replace(b"@TOKEN@", ECHO_TOKEN.encode()).replace(
        b"@QUOTED@", quote(ECHO_TOKEN).encode()
    )
    sent = {k: v.replace("@TOKEN@", ECHO_TOKEN) for k, v in headers.items()}
    [order_id] = sim.add_orders(1)
    sim.faults = FaultPlan(scripts={order_id: [Fault.response(status, echoed, sent)]})
    async with client_for(sim, retry=RetryPolicy.none()) as client:
        with pytest.raises(FrontOfficeError) as caught:
            await client.cancel_order(order_id)
        result = await client.cancel_orders([order_id])  # the second answer is the plain 400
    assert_secret_absent(caught.value, ECHO_TOKEN, quote(ECHO_TOKEN), quote(ECHO_TOKEN, safe=""))
    assert "[hidden]" in str(caught.value) or "[hidden]" in caught.value.body  # type: ignore[attr-defined]
    assert ECHO_TOKEN not in json.dumps(result.as_dict())


async def test_a_broken_status_line_keeps_no_token_in_its_cause() -> None:
    async with (
        RawServer([http("HTTP/1.1 abc OK")]) as server,
        client_for(server.url, retry=RetryPolicy.none()) as client,
    ):
        with pytest.raises(FrontOfficeError) as caught:
            await client.cancel_order("01K2PF9XS29WN4JZRHMCTTQYJB")
    cause = caught.value.__cause__
    assert cause is not None and cause.args  # aiohttp's error, with its RequestInfo
    assert_secret_absent(caught.value, SENTINEL_TOKEN)


async def test_an_offline_token_echoed_by_the_exchange_is_hidden() -> None:
    offline = "OFFLINE-SENTINEL-42abc"
    echo = Fault.response(400, f'{{"detail": "unknown offline token {offline}"}}'.encode())
    async with FrontOfficeSimulator(offline_token=offline) as sim:
        sim.faults = FaultPlan(sequence=[echo], endpoints=frozenset({"access_token"}))
        auth = OfflineTokenAuth(offline)
        async with FrontOfficeClient(sim.url, token=auth, account_id="a") as client:
            with pytest.raises(FrontOfficeError) as caught:
                await client.list_accounts()
    assert_secret_absent(caught.value, offline)
    assert "[hidden]" in str(caught.value)


# --- a token echoed across a clip: masked whole, never its head --------------------------------

LONG_TOKEN = "eyJhbGciOiJSUzI1NiJ9." + "SENTINELpayload" * 4 + ".c2lnbmF0dXJlX2Zvcl90ZXN0"


def assert_no_fragment_of(error: BaseException, token: str) -> None:
    """No 8 characters in a row of `token` anywhere a user can reach from `error`."""
    windows = {token[i : i + 8] for i in range(len(token) - 7)}
    texts = ["".join(traceback.format_exception(error))]
    for item in errors_in(error):
        texts += [str(item), repr(item), repr(item.args), repr(vars(item))]
        if isinstance(item, FrontOfficeError):
            texts.append(json.dumps(item.as_dict()))
    for text in texts:
        leaked = sorted(w for w in windows if w in text)
        assert not leaked, f"{leaked[:2]} in {text[:160]!r}"


@pytest.mark.parametrize("cut", [200 - 30, 400 - 30, 4096 - 30, 100 - 30])
async def test_an_echoed_token_straddling_a_clip_shows_nothing_of_it(cut: int) -> None:
    echo = "x" * cut + LONG_TOKEN
    body = json.dumps({"title": echo, "detail": echo, "traceId": echo[-110:], "pad": echo * 9})
    async with FrontOfficeSimulator(token=LONG_TOKEN) as sim:
        ids = sim.add_orders(2)
        bad = Fault.response(409, body.encode(), {"Content-Type": "application/json"})
        sim.faults = FaultPlan(scripts={i: [bad] for i in ids})
        async with client_for(sim, retry=RetryPolicy.none()) as client:
            result = await client.cancel_orders(ids[:1])
            try:
                await client.cancel_order(ids[1])
            except FrontOfficeError as error:
                single: BaseException = error
    assert result[0].error is not None
    assert_no_fragment_of(result[0].error, LONG_TOKEN)
    assert_no_fragment_of(single, LONG_TOKEN)
