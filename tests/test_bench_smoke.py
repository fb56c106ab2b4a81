"""The benchmark runs end to end in quick mode, its equal-work peer parses exactly as the
library does, so the race compares equal work, and its no-speedups contender really parses with
the standard library."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import _server
from bench._clients import Target, stdlib_json
from bench._contenders import CONTENDERS, SPEEDUPS, STDLIB
from bench._peer import loads_order
from bench._profile import read_total
from frontoffice_async import CancelNotConfirmedError, FrontOfficeClient, _converter
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
        timeout=300,
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
    assert results["parse"]["library_stdlib_us"] > 0
    assert "speedups_vs_stdlib" in results
    # Quick mode counts no instructions (valgrind takes minutes): that target is skipped;
    # without orjson, so are the four targets of the speedups extra.
    assert "instructions" not in results
    skipped = {t["name"] for t in results["targets"] if t["passed"] is None}
    expected = {"cancel_orders, no speedups: instructions vs raw aiohttp + json (callgrind)"}
    if not SPEEDUPS:
        expected |= {
            t["name"] for t in results["targets"] if "speedups NOT installed" in t["name"]
        }
    assert skipped == expected
    # The emergency's figures (issue 23): flatten at two sizes (ideal, raw), the guard's
    # reaction, the journal's cost, a large snapshot's memory; each with its target.
    emergency = results["emergency"]
    assert [s["accounts"] for s in emergency["flatten"]["sizes"]] == [1, 2]
    assert emergency["guard"]["guard"]["first_delete_s"]["median"] > 0
    # The journal at the scenario's latency (the target's) and CPU-bound, at zero latency.
    assert [a["latency_s"] for a in emergency["journal"]["by_latency"]] == [0.02, 0.0]
    assert all(a["ratio_wall"]["n"] == 1 for a in emergency["journal"]["by_latency"])
    # Each flatten size says how busy the client and the server were, and what was served.
    for size in emergency["flatten"]["sizes"]:
        for kind in ("library", "raw"):
            assert size[f"{kind}_server_busy"]["median"] > 0
            assert size[f"{kind}_requests"]["median"] > size["accounts"] * 20
    assert emergency["snapshot_memory"]["ratio"] > 1
    names = [t["name"] for t in results["targets"]]
    assert sum("flatten, " in name for name in names) == 4
    assert sum(name.startswith("guard: ") for name in names) == 2
    assert len(results["targets"]) == 18
    verdicts = [completed.stdout.count(word) for word in ("PASS  ", "MISS  ", "SKIP  ")]
    assert sum(verdicts) == 18 and verdicts[2] == len(expected)
    assert plot.read_bytes().startswith(b"\x89PNG")
    for name in ("flatten_accounts.png", "flatten_orders.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


def test_the_no_speedups_contender_parses_with_the_standard_library_only_while_it_runs() -> None:
    installed = (_converter.decode, _converter._json_loads)
    with stdlib_json():
        assert _converter.decode is _converter._stdlib_decode
        assert _converter._json_loads is _converter._stdlib_json_loads
    assert (_converter.decode, _converter._json_loads) == installed


async def test_the_no_speedups_contender_cancels_through_the_standard_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its runs parse every answer with the standard library, and only its runs do."""
    seen: list[bytes] = []
    stdlib = _converter._stdlib_json_loads

    def spy(body: bytes) -> Any:
        seen.append(body)
        return stdlib(body)

    monkeypatch.setattr(_converter, "_stdlib_json_loads", spy)
    contender = next(c for c in CONTENDERS if c.key == STDLIB)
    with _server.start("fast") as server:
        target = Target(server.url, server.token, server.account_id)
        async with contender.open(target, 4) as run:
            assert await run([f"01K2PF9XS2{n:016d}" for n in range(10)]) == 10
            assert _converter._json_loads is not spy  # between runs: as installed
    assert len(seen) == 10  # every answer, and nothing else


def test_callgrind_totals_are_read_from_its_output_file() -> None:
    text = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nfn=(1) main\n5 7\ntotals: 4242\n"
    assert read_total(text) == 4242
    assert read_total(text.replace("totals:", "summary:")) == 4242
    with pytest.raises(RuntimeError, match="no totals"):
        read_total("events: Ir\n")
