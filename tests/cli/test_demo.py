"""`frontoffice demo` and `frontoffice simulate`, run in-process (`cli.run`)."""

from __future__ import annotations

import asyncio
import json

import pytest

from frontoffice_async import cli

from ..support import RESULT_KEYS, Run, summary_row


async def test_demo_is_verified_and_says_in_how_many_rounds(invoke: Run) -> None:
    code, out, err = await invoke("demo", "--orders", "200")
    assert code == 0, err
    # One order in 100 is busy (409) on its first cancel: each account needs a second round.
    assert "2 orders busy (409)" in " ".join(out.split())  # a paragraph, wrapped
    assert summary_row(out, "cancelled").split() == ["100", "100"]
    assert summary_row(out, "failed").split() == ["0", "0"]
    assert summary_row(out, "rounds").split() == ["2", "2"]
    assert summary_row(out, "verified").split() == ["yes", "yes"]
    assert out.count(": verified in 2 rounds (a fresh snapshot shows none)\n") == 2
    assert out.rstrip().endswith("verified in 2 rounds: the simulator confirms 0 orders left open")


async def test_demo_json_holds_each_accounts_result(invoke: Run) -> None:
    code, out, _ = await invoke("demo", "--orders", "50", "--fault-rate", "0.3", "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"verified", "left_open", "accounts"}
    assert doc["verified"] is True
    assert doc["left_open"] == 0
    assert len(doc["accounts"]) == 2
    for result in doc["accounts"].values():
        assert set(result) == RESULT_KEYS
        assert result["verified"] is True
        assert result["counts"]["failed"] == 0
    assert sum(r["counts"]["cancelled"] for r in doc["accounts"].values()) == 50
    assert sum(r["attempts"] for r in doc["accounts"].values()) > 50  # faults were retried


async def test_demo_with_nothing_to_cancel(invoke: Run) -> None:
    code, out, _ = await invoke("demo", "--orders", "0")
    assert code == 0
    assert summary_row(out, "rounds").split() == ["0", "0"]
    assert "verified in 0 rounds" in out


async def test_simulate_serves_until_cancelled(capsys: pytest.CaptureFixture[str]) -> None:
    task = asyncio.create_task(cli.run(["simulate", "--port", "0", "--orders", "4", "--json"]))
    seen = ""
    for _ in range(2000):  # until the simulator has printed its environment
        seen += capsys.readouterr().out
        if seen.endswith("}\n") or task.done():
            break
        await asyncio.sleep(0.005)
    info = json.loads(seen)
    env = info["env"]
    assert env["FRONTOFFICE_BASE_URL"] == info["url"]
    assert env["FRONTOFFICE_ACCOUNT_ID"] == info["account_ids"][0]
    # The printed environment is enough to drive the CLI against it.
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        assert await cli.run(["cancel-all", "--yes", "--no-progress"]) == 0
    assert "verified: a fresh snapshot" in capsys.readouterr().out
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "simulator stopped" in capsys.readouterr().err
