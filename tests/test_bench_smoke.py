"""The benchmark runs end to end in quick mode, and its equal-work peer parses exactly as the
library does, so the race compares equal work."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import _server
from bench._contenders import CONTENDERS
from bench._peer import loads_order
from frontoffice_async import CancelNotConfirmedError, FrontOfficeClient
from frontoffice_async.testing import FrontOfficeSimulator

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def _odd_body() -> dict[str, Any]:
    """The bench body with what a careless parse gets wrong: JSON numbers as decimals, an
    offset that is not UTC, a naive timestamp, a newer key, and an extra key."""
    body = copy.deepcopy(_server.ORDER_BODY)
    order = body["order"]
    order.update(commission=0.1, fillFactor=1, requestedPrice="4450.000000000000000001")
    order.update(createdAt="2025-08-15T10:59:51.1234567+02:00", updatedAt="2025-08-15T09:00:06")
    order.update(cancellationDate="2025-08-15T09:00:06.2791048Z", comment="panic", extra=[1])
    return body


def _bodies(tmp_path: Path) -> list[Path]:
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps(_odd_body()), encoding="utf-8")
    bench = tmp_path / "bench.json"
    bench.write_bytes(_server.ORDER_BYTES)
    samples = ["cancel_order_200.json", "cancel_order_partial_fill_200.json"]
    samples.append("cancel_order_unknown_enums_200.json")
    return [bench, odd, *(DATA / name for name in samples)]


async def test_peer_parses_what_the_library_returns_from_the_bench_server(
    tmp_path: Path,
) -> None:
    for path in _bodies(tmp_path):
        with _server.start("fast", body=path) as server:
            async with FrontOfficeClient(
                server.url, token=server.token, account_id=server.account_id
            ) as client:
                # The id the body names: the library checks that the answer is about it.
                order_id = json.loads(path.read_bytes())["order"]["orderId"]
                order: object
                try:
                    order = await client.cancel_order(order_id)
                except CancelNotConfirmedError as exc:  # an unknown status: not a cancel
                    order = exc.order
        assert loads_order(path.read_bytes()) == order, path.name


async def test_peer_parses_what_the_library_returns_from_the_simulator() -> None:
    async with FrontOfficeSimulator() as sim:
        ids = sim.add_orders(5)
        async with FrontOfficeClient(sim.url, token=sim.token, account_id=sim.account_ids[0]) as c:
            for order_id in ids:
                order = await c.cancel_order(order_id)
                # What the simulator answered: the order's wire form after the cancel.
                body = json.dumps({"order": sim.orders[order_id].to_wire()}).encode()
                assert loads_order(body) == order


@pytest.mark.timeout(90)
def test_bench_quick_run_reports_every_contender_and_target(tmp_path: Path) -> None:
    out, plot = tmp_path / "results.json", tmp_path / "cpu.png"
    # A subprocess, as `make bench` runs it: the bench starts its own servers and event loops.
    completed = subprocess.run(  # noqa: S603 -- our own interpreter, fixed arguments
        [
            sys.executable,
            "-W",
            "error",  # an unclosed session or a deprecation in the bench fails here too
            "-m",
            "bench",
            "--quick",
            "--n=60",
            "--rounds=2",
            "--concurrency=8",
            "--stream-n=200",
            f"--json={out}",
            f"--plot={plot}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    results = json.loads(out.read_text(encoding="utf-8"))

    assert set(results["contenders"]) == {c.key for c in CONTENDERS}
    for row in results["contenders"].values():
        assert row["cpu_us"]["median"] > 0
        assert row["ratio"]["n"] == 2  # one ratio per round
        assert row["label"] in completed.stdout
    assert results["stream"]["ids"] == 200
    assert results["cancel_all"]["library_wall_s"]["median"] > 0
    assert results["imports"]["extra_ms"]["n"] == 1
    assert results["imports"]["first_use_extra_ms"]["n"] == 1
    assert results["help"]["wall_ms"]["median"] > 0
    assert len(results["targets"]) == 8
    assert all(t["passed"] in (True, False) for t in results["targets"])
    assert completed.stdout.count("PASS") + completed.stdout.count("MISS") == 8
    assert plot.read_bytes().startswith(b"\x89PNG")
