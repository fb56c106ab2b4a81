"""Adversary: the flatten journal against odd text.

Promises (docs/flatten.md "The journal"): one JSON object a line, written as the run goes; a
`request` event for each request that reached the wire, an `outcome` per id, a `summary`
last; every line masked with every token the client has used: "the token never reaches the
file, in any form".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from frontoffice_async import FrontOfficeClient
from frontoffice_async.testing import FrontOfficeSimulator

from ._platform import ACCOUNT, EMPTY_POSITIONS, TOKEN, Platform, item, open_order


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_lone_surrogate_in_a_hub_record_silences_the_rest_of_the_journal(
    tmp_path: Path,
) -> None:
    """The OpenOrders snapshot shows an order whose `marketDisplayName` holds the JSON escape
    of a lone surrogate (`"\\ud800"`: valid JSON, what a .NET server writes for a broken
    UTF-16 string). A dry run keeps the order in `orders.remaining`, so the `summary` event
    (`as_dict()`) carries that string. `Journal.event` (`_stop/journal.py`) dumps with
    `ensure_ascii=False`, then `line.encode()` raises UnicodeEncodeError, which the journal
    takes for a full disk: it stops writing for the rest of the run. Expected: the `summary`
    last in the file (the journal is for explaining the run afterwards). Happened: no
    summary; `journal_error` is "UnicodeEncodeError". (The same happens to a `snapshot`
    event when an id holds one, and every later line is lost.)"""
    record = open_order("01K2PF9XS29WN4JZRHMCTTQYJB")
    record["marketDisplayName"] = "SPOT ETH/USDT \ud800"
    platform = Platform(
        streams={"OpenOrders": [[item([record])]], "OpenPositions": [EMPTY_POSITIONS]}
    )
    await platform.start()
    path = tmp_path / "flatten.jsonl"
    try:
        async with FrontOfficeClient(platform.url, token=TOKEN, account_id=ACCOUNT) as client:
            result = await client.flatten(journal=path, dry_run=True)
    finally:
        await platform.aclose()
    assert result.accounts[ACCOUNT].orders.remaining  # the order is seen: right
    assert result.journal_error is None, f"the journal stopped: {result.journal_error}"
    lines = events(path)
    assert lines[-1]["event"] == "summary"


async def test_a_token_with_a_quote_is_not_masked_in_the_journal(
    frontoffice_simulator_factory: Any, tmp_path: Path
) -> None:
    """A token is any printable ASCII without spaces (`auth.bearer_header`), so it may hold a
    `"` or a `\\`. The journal masks each line *after* `json.dumps` (`Journal.event`): the
    token is written escaped (`\\"`), the masking looks for it raw, finds nothing, and a reader
    of the file (`json.loads`) gets the token back. Here it reaches the journal through the
    `run` event's `journal_fields` (a note quoting the client's token); any text that reaches
    the journal unmasked (the ids of a hub record that echoes it) does the same. Expected:
    `[hidden]` in its place."""
    token = 'sim-quote"IN-THE-MIDDLE-7d1f0a9c'
    sim: FrontOfficeSimulator = await frontoffice_simulator_factory(token=token)
    path = tmp_path / "flatten.jsonl"
    async with FrontOfficeClient(sim.url, token=token, account_id=sim.account_ids[0]) as client:
        await client.flatten(journal=path, journal_fields={"note": f"run with {token}"})
    for event in events(path):
        assert token not in repr(event), event


async def test_the_journal_never_shows_what_was_open_when_the_work_started_early(
    frontoffice_simulator: FrontOfficeSimulator, tmp_path: Path
) -> None:
    """5 open orders and 3 positions; flatten with a journal. Round 1's cancels and bulk
    close start on the snapshots' first items (the early start); the platform's updates
    ("Cancelled", "Closed") then arrive inside the same settle window, and the `snapshot` event
    is written from the *merged* window (`AccountOps._snapshot`, `_stop/ops.py`: the journal
    gets `read_snapshot`'s merged records). So the round-1 `snapshot` events say
    `count: 0, ids: []` for both streams, while the run sent 5 cancels and a bulk close: the
    journal never names what was open when the panic began (docs/flatten.md: `snapshot` is
    "each snapshot read", for "the person who must explain the run afterwards"), and with a
    bulk close the 3 positions get no `outcome` either. Expected: the first snapshot events
    list the 5 orders and 3 positions the work acted on."""
    sim = frontoffice_simulator
    orders = sim.add_orders(5)
    positions = sim.add_positions(3)
    path = tmp_path / "flatten.jsonl"
    async with FrontOfficeClient(
        sim.url, token=sim.token, account_id=sim.account_ids[0], snapshot_settle=0.3
    ) as client:
        result = await client.flatten(journal=path)
    assert result.verified and sim.open_order_ids() == []  # the run itself is right
    lines = events(path)
    first: dict[str, dict[str, Any]] = {}
    for event in lines:
        if event["event"] == "snapshot":
            first.setdefault(event["stream"], event)
    assert set(first["OpenOrders"]["ids"]) == set(orders), first["OpenOrders"]
    assert set(first["OpenPositions"]["ids"]) == set(positions), first["OpenPositions"]
