"""Fixtures of the CLI tests: fast retries, the shared simulator named by the environment, and
`invoke`, which runs the command in-process and checks the token is never printed."""

from __future__ import annotations

import pytest

from frontoffice_async import RetryPolicy, cli
from frontoffice_async.cli import common
from frontoffice_async.testing import FrontOfficeSimulator

from ..support import SENTINEL_TOKEN, Run


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff of a millisecond, so retry paths cost no real time (in-process runs only)."""
    monkeypatch.setattr(common, "RETRY", RetryPolicy(base_delay=0.001, max_delay=0.002))


@pytest.fixture
def sim(sim: FrontOfficeSimulator, monkeypatch: pytest.MonkeyPatch) -> FrontOfficeSimulator:
    """The shared simulator (sentinel token), with the environment pointing at it."""
    monkeypatch.setenv("FRONTOFFICE_BASE_URL", sim.url)
    monkeypatch.setenv("FRONTOFFICE_TOKEN", sim.token)
    monkeypatch.setenv("FRONTOFFICE_ACCOUNT_ID", sim.account_ids[0])
    return sim


@pytest.fixture
def invoke(capsys: pytest.CaptureFixture[str]) -> Run:
    """`await invoke(*argv)` -> (exit code, stdout, stderr); the token must appear in neither."""

    async def run(*argv: str) -> tuple[int, str, str]:
        code = await cli.run(list(argv))
        out, err = capsys.readouterr()
        assert SENTINEL_TOKEN not in out
        assert SENTINEL_TOKEN not in err
        return code, out, err

    return run
