"""`client.guard()` in this process, its guard a real one: how leaving the `async with` ends
it, the token it holds, a start that fails, a guard that dies."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from frontoffice_async import (
    AuthenticationError,
    FrontOfficeClient,
    Guard,
    GuardError,
)
from frontoffice_async._stop import guard as guard_module
from frontoffice_async.testing import FrontOfficeSimulator

from ..support import client_for
from .test_guard import SETTLE, books, cancels, gone, journal_of, until

posix = pytest.mark.skipif(sys.platform == "win32", reason="POSIX sessions and signals")


def scene(sim: FrontOfficeSimulator) -> list[str]:
    sim.add_orders(5)
    sim.add_positions(1)
    return sim.add_stop_orders(1)


@posix
async def test_leaving_cleanly_disarms_at_once_and_nothing_is_cancelled_later(
    sim: FrontOfficeSimulator,
) -> None:
    stops = scene(sim)
    timeout = 0.2
    async with client_for(sim, snapshot_settle=SETTLE) as client:
        async with client.guard(timeout=timeout, stop_order_ids=stops) as guard:
            assert guard.alive
            pid = guard.pid
            assert pid is not None
            await asyncio.sleep(timeout)  # a few heartbeats go by
        assert (guard.alive, guard.returncode) == (False, 0)
        assert gone(pid)  # `__aexit__` waited for it
        await asyncio.sleep(2 * timeout)
    assert cancels(sim) == []
    assert len(books(sim)) == 7
    assert guard.trigger is None


class Stop(Exception):
    """The strategy failed."""


@posix
@pytest.mark.parametrize(
    ("leave", "options", "flattens"),
    [
        (Stop, {}, True),
        (Stop, {"on_error": "disarm"}, False),
        (asyncio.CancelledError, {}, False),
        (SystemExit, {"on_stop": "flatten"}, True),
    ],
    ids=["error", "error-disarm", "cancelled", "exit-flatten"],
)
async def test_how_the_block_is_left_decides_whether_the_guard_flattens(
    sim: FrontOfficeSimulator,
    caplog: pytest.LogCaptureFixture,
    leave: type[BaseException],
    options: dict[str, Any],
    flattens: bool,
) -> None:
    stops = scene(sim)
    guards: list[Guard] = []

    async def bot(client: FrontOfficeClient) -> None:
        async with client.guard(stop_order_ids=stops, **options) as guard:
            guards.append(guard)
            if leave is asyncio.CancelledError:
                await asyncio.sleep(3600)
            raise leave

    async def run(client: FrontOfficeClient) -> None:
        if leave is not asyncio.CancelledError:
            await bot(client)  # in this task: asyncio lets a SystemExit out of a task's step
            return
        task = asyncio.ensure_future(bot(client))
        await until(lambda: guards, 20.0)
        task.cancel()
        await task

    async with client_for(sim, snapshot_settle=SETTLE) as client:
        with pytest.raises(leave):
            await run(client)
    [guard] = guards
    assert guard.returncode == 0  # disarmed, or flattened and verified
    assert guard.pid is not None
    assert gone(guard.pid)  # a flatten is waited for too
    assert (books(sim) == []) is flattens
    assert bool(cancels(sim)) is flattens
    said = [r.getMessage() for r in caplog.records]
    assert any("on the way out" in m and "verified" in m for m in said) is flattens


@posix
async def test_a_token_the_provider_refreshed_after_the_start_is_the_one_the_guard_uses(
    sim: FrontOfficeSimulator, tmp_path: Path
) -> None:
    stops = scene(sim)
    first = sim.token
    tokens = [first]

    async def provider() -> str:
        return tokens[-1]

    async def bot(client: FrontOfficeClient) -> None:
        async with client.guard(timeout=0.4, stop_order_ids=stops, journal=journal):
            tokens.append(sim.issue_token())
            sim.revoke_token(first)
            await client.list_accounts()  # a 401, then the provider's fresh token
            await asyncio.sleep(0.25)  # heartbeats carry it to the guard
            raise Stop

    journal = tmp_path / "guard.jsonl"
    async with client_for(sim, token=provider, snapshot_settle=SETTLE) as client:
        with pytest.raises(Stop):
            await bot(client)
    fresh = tokens[-1]
    assert books(sim) == []
    assert {r.token for r in cancels(sim)} == {fresh}
    text = journal.read_text()
    assert first not in text
    assert fresh not in text
    assert journal_of(journal)[0]["cause"] == "Stop"


@posix
async def test_a_wrong_token_fails_entering_and_no_guard_remains(
    sim: FrontOfficeSimulator,
) -> None:
    sim.add_orders(3)
    async with client_for(sim, token="not-the-token") as client:
        guard = client.guard()
        with pytest.raises(AuthenticationError) as caught:
            async with guard:
                pytest.fail("entered")
    assert caught.value.status == 401
    assert "not-the-token" not in str(caught.value)
    assert guard.pid is not None
    assert gone(guard.pid)
    assert not guard.alive
    assert cancels(sim) == []


@posix
async def test_an_account_the_token_does_not_own_fails_entering(
    sim: FrontOfficeSimulator,
) -> None:
    narrow = sim.issue_token([sim.account_ids[1]])
    async with client_for(sim, token=narrow) as client:
        with pytest.raises(GuardError, match="cannot act on"):
            async with client.guard():
                pytest.fail("entered")


@posix
async def test_a_guard_that_dies_turns_alive_false_with_a_warning(
    sim: FrontOfficeSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.add_orders(3)
    async with client_for(sim) as client:
        async with client.guard(timeout=0.4) as guard:
            assert guard.pid is not None
            os.kill(guard.pid, signal.SIGKILL)
            await until(lambda: not guard.alive, 5.0)
            warned = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert any("died (killed by signal 9)" in r.getMessage() for r in warned)
            await asyncio.sleep(0.2)  # the heartbeat task notices quietly
        assert guard.returncode == -signal.SIGKILL
    assert cancels(sim) == []


@posix
async def test_a_bot_that_wakes_after_its_guard_fired_finds_it_acting_and_waits_for_it(
    sim: FrontOfficeSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    stops = scene(sim)
    async with client_for(sim, snapshot_settle=SETTLE) as client:
        async with client.guard(timeout=0.2, stop_order_ids=stops) as guard:
            # This loop, the simulator's too, blocks: the guard fires, and its requests wait
            # for the simulator to wake.
            time.sleep(0.4)  # noqa: ASYNC251 - the hang under test
            await until(lambda: guard.trigger is not None, 5.0)
            assert not guard.alive
        # Leaving cleanly disarms nothing now: it waited for the guard's whole flatten.
        assert (guard.trigger, guard.returncode) == ("heartbeat missed", 0)
    assert books(sim) == []
    assert not any("killed" in r.getMessage() for r in caplog.records)


async def test_a_disarm_that_comes_after_the_guard_fired_never_cuts_its_flatten_short(
    sim: FrontOfficeSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bot's loop stalls past the timeout and the block ends right after it wakes: the
    # guard is already flattening, but the bot has not read its "acting" yet and disarms. A
    # disarmed guard that does not exit at once is killed, unless it is flattening: then its
    # whole flatten is waited for (here longer than the disarm's wait, made short).
    monkeypatch.setattr(guard_module, "DISARM_WAIT", 0.05)
    stops = scene(sim)
    async with (
        client_for(sim, snapshot_settle=SETTLE) as client,
        client.guard(timeout=0.2, stop_order_ids=stops) as guard,
    ):
        time.sleep(0.4)  # noqa: ASYNC251 - the hang under test; then leave at once
    assert guard.returncode == 0  # it finished, verified: not killed
    assert books(sim) == []
