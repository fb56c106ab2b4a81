"""Fixtures: the simulator with a sentinel token, and aioresponses (with its shim).

Helpers that are not fixtures live in tests/support.py; the simulator's own fixtures
(`frontoffice_simulator`, `frontoffice_simulator_factory`) come from its pytest plugin, which
the package registers as a `pytest11` entry point.
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import pytest_asyncio
from aioresponses import aioresponses, core

from frontoffice_async._hub import snapshot

from ._scripted_hub import ScriptedHubs
from .support import SENTINEL_TOKEN, SHORT_SETTLE

if TYPE_CHECKING:  # the plugin module is imported by pytest itself, so its asserts are rewritten
    from frontoffice_async.testing import FrontOfficeSimulator
    from frontoffice_async.testing.pytest_plugin import SimulatorFactory


@pytest.fixture(autouse=True)
def short_settle_window(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshots settle for `SHORT_SETTLE` seconds, not 0.5, unless the test is marked
    `real_settle`: the simulator sends a snapshot as one item, and the suite takes hundreds."""
    if request.node.get_closest_marker("real_settle") is None:
        monkeypatch.setattr(snapshot, "DEFAULT_SETTLE", SHORT_SETTLE)


@pytest.fixture
async def sim(frontoffice_simulator_factory: SimulatorFactory) -> FrontOfficeSimulator:
    """A running simulator whose token is `SENTINEL_TOKEN`, closed after the test."""
    return await frontoffice_simulator_factory(token=SENTINEL_TOKEN)


# --- aioresponses shim ------------------------------------------------------------------------
# aioresponses 0.7.9 builds `ClientResponse(...)` without the `stream_writer` argument that
# aiohttp 3.14 made required, so every mocked request fails with a TypeError. Until upstream
# ships a fix, hand it a response class that supplies a finished stub writer. Remove this
# when aioresponses > 0.7.9 works with aiohttp >= 3.14 (tests/test_errors.py will tell).
class _CompatClientResponse(aiohttp.ClientResponse):
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


@pytest.fixture
def mock_http(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """aioresponses, patched for aiohttp 3.14. No middleware runs under it: use it only for
    mapping responses to results and errors; use the simulator for anything else."""
    monkeypatch.setattr(core, "ClientResponse", _CompatClientResponse)
    with aioresponses() as mocked:
        yield mocked


@pytest_asyncio.fixture
async def hubs() -> AsyncIterator[ScriptedHubs]:
    """Scripted SignalR hubs on loopback (see `_scripted_hub`), closed after the test."""
    started = ScriptedHubs()
    try:
        yield started
    finally:
        await started.aclose()
