"""`frontoffice demo` and `frontoffice simulate`, run in-process (`cli.run`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from frontoffice_async import cli

from ..support import ACCOUNT_KEYS, FLATTEN_KEYS, RESULT_KEYS, Run


def _account_blocks(out: str) -> dict[str, list[str]]:
    """The lines of each account's block of a flatten report, by its heading."""
    blocks: dict[str, list[str]] = {}
    current: list[str] = []
    for line in out.splitlines():
        if line.startswith("account "):
            current = blocks.setdefault(line, [])
        elif line.startswith("  "):
            current.append(line.strip())
    return blocks


async def test_demo_flattens_every_account_verified(invoke: Run) -> None:
    code, out, err = await invoke("demo", "--orders", "200")
    assert code == 0, err
    said = " ".join(out.split())  # the intro is a paragraph, wrapped
    assert "2 orders busy (409)" in said
    assert "a stop-out placing 2 orders on each account" in said
    blocks = _account_blocks(out)
    assert [h.split(": ", 1)[1] for h in blocks] == ["verified", "verified"]
    for lines in blocks.values():
        # 100 orders, the order of the stop order triggered before the run and the stop-out's
        # 2; 10 stop orders given, the triggered one final; 20 positions.
        assert lines[0].split() == [
            *("orders", "103", "cancelled", "0", "not", "found"),
            *("0", "not", "active", "0", "failed"),
        ]
        assert lines[1].split()[:5] == ["stop", "orders", "9", "cancelled", "0"]
        assert "1 not active" in lines[1]
        assert lines[2].split() == ["positions", "20", "accepted", "0", "still", "open"]
    assert "verified: fresh snapshots show 2 accounts flat" in out
    assert out.rstrip().endswith(
        "the simulator confirms: 0 orders, 0 stop orders and 0 positions left open"
    )


async def test_demo_json_holds_the_flatten_result(invoke: Run) -> None:
    code, out, _ = await invoke("demo", "--orders", "50", "--fault-rate", "0.3", "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"verified", "left_open", "flatten"}
    assert doc["verified"] is True
    assert doc["left_open"] == {"orders": 0, "stop_orders": 0, "positions": 0}
    flatten = doc["flatten"]
    assert set(flatten) == FLATTEN_KEYS
    assert flatten["verified"] is True
    assert len(flatten["accounts"]) == 2
    for account in flatten["accounts"].values():
        assert set(account) == ACCOUNT_KEYS
        assert set(account["orders"]) == RESULT_KEYS
        assert account["verified"] is True
        assert account["orders"]["counts"]["failed"] == 0
        assert account["stop_orders"]["counts"]["failed"] == 0
        assert account["positions"]["remaining"] == []
    orders = [a["orders"] for a in flatten["accounts"].values()]
    assert sum(r["counts"]["cancelled"] for r in orders) == 50 + 2 + 2 * 2
    assert sum(r["attempts"] for r in orders) > 56  # faults were retried


async def test_demo_with_nothing_to_flatten(invoke: Run) -> None:
    argv = ("--orders", "0", "--positions", "0", "--stop-orders", "0")
    code, out, _ = await invoke("demo", *argv)
    assert code == 0
    assert "verified: fresh snapshots show 2 accounts flat" in out


async def _serve(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[asyncio.Task[int], str]:
    """`simulate ... --json` in a task, once it has printed its document."""
    task = asyncio.create_task(cli.run(["simulate", "--port", "0", *argv, "--json"]))
    seen = ""
    for _ in range(2000):  # until the simulator has printed its environment
        seen += capsys.readouterr().out
        if seen.endswith("}\n") or task.done():
            break
        await asyncio.sleep(0.005)
    return task, seen


async def _stop(task: asyncio.Task[int], capsys: pytest.CaptureFixture[str]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "simulator stopped" in capsys.readouterr().err


async def test_simulate_serves_until_cancelled(capsys: pytest.CaptureFixture[str]) -> None:
    task, seen = await _serve(capsys, "--orders", "4")
    info = json.loads(seen)
    env = info["env"]
    assert env["FRONTOFFICE_BASE_URL"] == info["url"]
    assert env["FRONTOFFICE_ACCOUNT_ID"] == info["account_ids"][0]
    assert info["positions"] == info["stop_orders"] == {}  # none asked for
    # The printed environment is enough to drive the CLI against it.
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        assert await cli.run(["cancel-all", "--yes", "--no-progress"]) == 0
    assert "verified: a fresh snapshot" in capsys.readouterr().out
    await _stop(task, capsys)


async def test_simulate_makes_positions_and_stop_orders_that_flatten_stops(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    task, seen = await _serve(capsys, "--orders", "6", "--positions", "5", "--stop-orders", "3")
    info = json.loads(seen)
    positions, stops = info["positions"], info["stop_orders"]
    assert set(positions) == set(stops) == set(info["account_ids"])  # a few reach each one
    assert sum(map(len, positions.values())) == 5
    assert sum(map(len, stops.values())) == 3
    # The stop orders printed are what `flatten --stop-orders` reads.
    path = tmp_path / "stops.txt"
    path.write_text("".join(f"{a} {i}\n" for a, ids in stops.items() for i in ids))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in info["env"].items():
            patch.setenv(name, value)
        argv = ["flatten", "--all-accounts", "--stop-orders", str(path), "--yes", "--json"]
        assert await cli.run(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verified"] is True
    accounts = doc["accounts"].values()
    assert sum(a["stop_orders"]["counts"]["cancelled"] for a in accounts) == 3
    assert sum(len(a["positions"]["accepted"]) for a in accounts) == 5
    assert sum(a["orders"]["counts"]["cancelled"] for a in accounts) == 6
    await _stop(task, capsys)


async def test_simulate_prints_the_stop_orders_as_a_file_flatten_reads(
    capsys: pytest.CaptureFixture[str],
) -> None:
    task = asyncio.create_task(
        cli.run(["simulate", "--port", "0", "--stop-orders", "2", "--positions", "2"])
    )
    seen = ""
    for _ in range(2000):
        seen += capsys.readouterr().out
        if "Press Ctrl-C" in seen or task.done():
            break
        await asyncio.sleep(0.005)
    lines = seen.splitlines()
    start = lines.index("stop orders (account id, stop order id):")
    pairs = lines[start + 1 : start + 3]
    assert [len(p.split()) for p in pairs] == [2, 2]
    assert "positions: 2, stop orders: 2" in seen
    await _stop(task, capsys)
