"""The benchmark entry point runs end to end with tiny numbers and reports every contender."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench._clients import CONTENDERS

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_run_reports_every_contender(tmp_path: Path) -> None:
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
            "--concurrency=8",
            "--stream-n=200",
            f"--json={out}",
            f"--plot={plot}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    results = json.loads(out.read_text(encoding="utf-8"))

    assert set(results["contenders"]) == {c.key for c in CONTENDERS}
    for row in results["contenders"].values():
        assert row["cpu_us_per_request"] > 0
        assert row["requests_per_s"] > 0
        assert row["label"] in completed.stdout
    assert results["parsing"]["structure_us"] > 0
    assert results["stream"]["ids"] == 200
    assert results["stream"]["peak_mib"] > 0
    assert results["cancel_all"]["wall_s"] > 0
    assert set(results["imports"]) == {"aiohttp", "frontoffice_async"}
    assert len(results["targets"]) == 5
    assert all(t["passed"] in (True, False) for t in results["targets"])
    assert plot.read_bytes().startswith(b"\x89PNG")
