"""Adversary: answers and hub records that carry the token, or a shape nobody checked.

Promises: the bearer token never appears in a repr, log, exception, journal or output
(design.md "Secrets"; errors.md); a 2xx answer is checked, not trusted (design.md "Round 3:
details decided": answers that looked like success).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from frontoffice_async import FlattenError, FrontOfficeClient, FrontOfficeError
from frontoffice_async.testing import Fault, FaultPlan, FrontOfficeSimulator

from ._platform import (
    ACCOUNT,
    EMPTY_ORDERS,
    TOKEN,
    Platform,
    json_response,
    position,
    positions_item,
)


def bulk_close_answers(sim: FrontOfficeSimulator, body: object) -> None:
    raw = json.dumps(body).encode()
    sim.faults = FaultPlan(sequence=[Fault.response(200, raw)], endpoints={"close_all_positions"})


@pytest.mark.parametrize("where", ["positionIds", "status"])
async def test_a_token_echoed_in_the_bulk_close_answer_is_never_shown(
    frontoffice_simulator: FrontOfficeSimulator, where: str
) -> None:
    """The platform's 2xx bulk-close answer echoes the bearer token (in `positionIds` or
    `status`): it lands unmasked in `PositionsCloseAck` (its repr), in the flatten result's
    `positions.accepted`, its repr and its `as_dict()` (what `--json` prints). Only the
    journal masks it."""
    sim = frontoffice_simulator
    token = sim.token
    sim.add_positions(1)
    body = (
        {"status": "accepted", "positionIds": [token]}
        if where == "positionIds"
        else {"status": token, "positionIds": []}
    )
    bulk_close_answers(sim, body)
    async with FrontOfficeClient(sim.url, token=token, account_id=sim.account_ids[0]) as c:
        try:
            ack: object = await c.close_all_positions()
        except FrontOfficeError as error:
            ack = error
        assert token not in repr(ack)
        assert token not in str(ack)
        bulk_close_answers(sim, body)
        result = await c.flatten(rounds=1)
    assert token not in repr(result)
    assert token not in json.dumps(result.as_dict())


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    started = Platform()
    yield started
    await started.aclose()


async def test_a_token_echoed_in_an_unreadable_hub_record_is_never_shown(
    platform: Platform,
) -> None:
    """An OpenPositions record without a readable id that quotes the token is kept, clipped
    but unmasked, in `positions.unreadable`, the result's repr and `as_dict()`, and in
    `PositionsStillOpenError.unreadable` (reachable from the FlattenError)."""
    platform.streams = {
        "OpenOrders": [EMPTY_ORDERS],
        "OpenPositions": [[positions_item([{"positionId": {"echo": TOKEN}}])]],
    }
    await platform.start()
    async with FrontOfficeClient(platform.url, token=TOKEN, account_id=ACCOUNT) as client:
        result = await client.flatten(dry_run=True)
    assert result.accounts[ACCOUNT].positions.unreadable  # reported: right
    assert TOKEN not in repr(result)
    assert TOKEN not in json.dumps(result.as_dict())
    with pytest.raises(FlattenError) as caught:
        result.raise_for_failures()
    for error in caught.value.exceptions:
        assert TOKEN not in repr(vars(error))


@pytest.mark.parametrize(
    "position_ids",
    [pytest.param("ABC", id="a-string"), pytest.param({"P1": 1}, id="an-object")],
)
async def test_a_bulk_close_answer_whose_position_ids_is_not_a_list_is_refused(
    frontoffice_simulator: FrontOfficeSimulator, position_ids: object
) -> None:
    """`{"status": "accepted", "positionIds": "ABC"}` becomes
    `PositionsCloseAck(position_ids=('A', 'B', 'C'))`, and an object becomes its keys: the
    converter iterates whatever it gets. Flatten then reports positions "A", "B", "C" as
    accepted, ids the platform never named."""
    sim = frontoffice_simulator
    bulk_close_answers(sim, {"status": "accepted", "positionIds": position_ids})
    async with FrontOfficeClient(sim.url, token=sim.token, account_id=sim.account_ids[0]) as c:
        try:
            ack = await c.close_all_positions()
        except FrontOfficeError:
            return
    pytest.fail(f"accepted a malformed answer as {ack!r}")


async def test_open_positions_never_shows_a_token_a_hub_record_quotes(platform: Platform) -> None:
    """A position record whose `positionLotAmount` quotes the token fails validation: the
    `ResponseValidationError` of `open_positions()` carries the token in its message, str and
    repr. (REST answers are scrubbed with `answers.scrub`; hub records are not.)"""
    record = position("P1")
    record["positionLotAmount"] = "x" + TOKEN
    platform.streams = {
        "OpenOrders": [EMPTY_ORDERS],
        "OpenPositions": [[positions_item([record])]],
    }
    await platform.start()
    async with FrontOfficeClient(platform.url, token=TOKEN, account_id=ACCOUNT) as client:
        with pytest.raises(FrontOfficeError) as caught:
            await client.open_positions()
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value)


async def test_positions_whose_ids_cannot_be_read_are_still_bulk_closed(
    platform: Platform,
) -> None:
    """The OpenPositions snapshot shows two positions whose `positionId` is a number (a format
    change). Without a market filter the close is `bulk-close` `AllPositions`, which needs no
    id, yet `_positions_to_close` requires readable ids: no close is ever sent, every round,
    and the positions stay open (reported as unreadable, so not a false verdict, but the panic
    button did not press)."""
    records = [dict(position("x"), positionId=1001), dict(position("x"), positionId=1002)]
    platform.streams = {
        "OpenOrders": [EMPTY_ORDERS],
        "OpenPositions": [[positions_item(records)]],
    }
    platform.rest[("POST", "/frontoffice/api/v4/positions/bulk-close")] = json_response(
        {"status": "accepted", "positionIds": []}
    )
    await platform.start()
    async with FrontOfficeClient(platform.url, token=TOKEN, account_id=ACCOUNT) as client:
        result = await client.flatten()
    assert len(result.accounts[ACCOUNT].positions.unreadable) == 2
    posts = [r for r in platform.requests if r[0] == "POST"]
    assert posts, "no bulk close was sent for the open positions"
