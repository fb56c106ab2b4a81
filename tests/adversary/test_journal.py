"""Adversary: the journal of a flatten.

Promises (flatten.md "The journal"): JSON Lines written as the run goes; `request` for "each
request that reached the wire"; one account's error never stops another; every id taken gets
an outcome (on_outcome sees each one). The journal is a record of the panic, not a reason for
the panic button to fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from frontoffice_async import CancelOutcome, FrontOfficeClient, FrontOfficeError, RetryPolicy
from frontoffice_async.testing import Fault, FaultPlan, FrontOfficeSimulator


class DiskFills(io.StringIO):
    """A text journal whose writes fail (ENOSPC) after `ok` lines: a disk that fills up."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok

    def write(self, text: str) -> int:
        if self.ok <= 0:
            raise OSError(28, "No space left on device")
        self.ok -= 1
        return super().write(text)


async def test_a_journal_that_fails_mid_run_does_not_abort_the_flatten(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """The disk fills after the `run` line and two more. flatten raises a bare OSError (the
    TaskGroup's ExceptionGroup, then the `error` event's own failed write over it): both
    accounts are abandoned mid-way with their positions open, no result is returned, and
    on_outcome missed the outcomes whose journal line failed (the sink writes first)."""
    sim = frontoffice_simulator
    for account in sim.account_ids:
        sim.add_orders(5, account_id=account)
        sim.add_positions(2, account_id=account)
    seen: list[CancelOutcome[Any]] = []
    async with FrontOfficeClient(sim.url, token=sim.token, account_id=sim.account_ids[0]) as c:
        try:
            result = await c.flatten(accounts="all", on_outcome=seen.append, journal=DiskFills(3))
        except BaseException as error:  # what it raises is the finding
            raise AssertionError(
                f"flatten raised {type(error).__name__}: {error}; positions left open: "
                f"{len(sim.open_position_ids())}, on_outcome saw {len(seen)} of "
                f"{len([r for r in sim.requests if r.endpoint == 'cancel_order'])} cancels"
            ) from None
    assert result.verified
    assert len(seen) == 10


async def test_a_cancelled_flatten_journals_the_close_that_reached_the_platform(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """The caller cancels the flatten while its bulk-close POST is on the wire. The platform
    got it and closed every position, but the journal has no `request` line for it (the
    observer is told only of attempts that end in an answer or an aiohttp/OS error), and its
    `error` line says only CancelledError: the person explaining the run never learns that a
    close went out."""
    sim = frontoffice_simulator
    sim.add_positions(3)
    sim.faults = FaultPlan(scripts={"close_all_positions": [Fault.slow(0.3)]})
    journal = io.StringIO()
    async with FrontOfficeClient(sim.url, token=sim.token, account_id=sim.account_ids[0]) as c:
        task = asyncio.create_task(c.flatten(journal=journal))
        while not [r for r in sim.requests if r.endpoint == "close_all_positions"]:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await asyncio.sleep(0.4)
    assert sim.open_position_ids() == []  # the close reached the platform and took effect
    events = [json.loads(line) for line in journal.getvalue().splitlines()]
    posts = [e for e in events if e["event"] == "request" and e.get("method") == "POST"]
    assert posts, f"journal events: {[e['event'] for e in events]}"


_FIFO_RUN = textwrap.dedent(
    """
    import asyncio, sys
    from frontoffice_async import FrontOfficeClient
    from frontoffice_async.testing import FrontOfficeSimulator

    async def main():
        async with FrontOfficeSimulator() as sim:
            sim.add_orders(2)
            async with FrontOfficeClient(sim.url, token=sim.token,
                                         account_id=sim.account_ids[0]) as client:
                try:
                    await asyncio.wait_for(client.flatten(journal=sys.argv[1]), 2.0)
                except BaseException as exc:
                    print("ended:", type(exc).__name__)
                else:
                    print("ended: returned")

    asyncio.run(main())
    """
)


def test_a_journal_path_that_is_a_fifo_does_not_freeze_the_event_loop(tmp_path: Path) -> None:
    """`journal=` names a FIFO nobody reads (an operator's mistake, or a log pipe whose
    reader died): `os.open(O_WRONLY)` blocks the event loop thread itself, before anything is
    sent, so no timeout, deadline or cancellation can end it: the process hangs for good. A
    subprocess with a 2 s `wait_for` around flatten is still frozen after 15 s."""
    fifo = tmp_path / "journal.fifo"
    os.mkfifo(fifo)
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", _FIFO_RUN, str(fifo)],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError("the event loop froze: wait_for(2 s) never fired") from None
    assert "ended:" in done.stdout, done.stderr[-2000:]


async def test_the_journal_masks_every_token_the_client_has_used(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """flatten.md: "Every line is masked with the tokens the client has used". It is masked
    with the last four only (`TokenSource._known` is a deque of 4): after a few refreshes, an
    error body that quotes the first token (a proxy, a slow answer to a request sent with it)
    writes that token into the journal, and into the result's `as_dict()`."""
    sim = frontoffice_simulator
    first = sim.issue_token(list(sim.account_ids))
    ids = sim.add_orders(12)
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return first if calls == 1 else sim.issue_token(list(sim.account_ids))

    # Each cancel: a 401 (a refresh), then 500s whose body quotes the first token.
    body = json.dumps({"title": "upstream said: Bearer " + first}).encode()
    sim.faults = FaultPlan(
        scripts={oid: [Fault.response(401)] + [Fault.response(500, body)] * 5 for oid in ids}
    )
    journal = io.StringIO()
    policy = RetryPolicy(base_delay=0.001, max_attempts=3)
    async with FrontOfficeClient(
        sim.url, token=provider, account_id=sim.account_ids[0], concurrency=1, retry=policy
    ) as c:
        result = await c.flatten(journal=journal, close_positions=False, rounds=1)
    assert calls > 5  # the provider was asked again and again: the first token is old news
    assert first not in journal.getvalue(), "the first token is in the journal"
    assert first not in json.dumps(result.as_dict()), "the first token is in the result"


async def test_a_flatten_that_fails_before_it_starts_still_leaves_a_journal(
    frontoffice_simulator: FrontOfficeSimulator, tmp_path: Path
) -> None:
    """`accounts="all"` and the account listing answers 403: flatten raises, but the journal
    file is never even created (it is opened after `list_accounts()`), so there is no `run`
    and no `error` line for the run that did not happen. (Cosmetic.)"""
    sim = frontoffice_simulator
    sim.faults = FaultPlan(sequence=[Fault.response(403)], endpoints={"accounts"})
    path = tmp_path / "journal.jsonl"
    async with FrontOfficeClient(sim.url, token=sim.token, account_id=sim.account_ids[0]) as c:
        with contextlib.suppress(FrontOfficeError):
            await c.flatten(accounts="all", journal=path)
    assert path.exists(), "no journal at all"
    events = [json.loads(line)["event"] for line in path.read_text().splitlines()]
    assert events[-1] == "error"
