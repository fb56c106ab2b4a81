"""Shared fixtures: sample bodies, the simulator plugin, and the aioresponses shim."""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses, core

DATA = Path(__file__).parent / "data"


def sample(name: str) -> bytes:
    """The bytes of a sample body from tests/data (copied from shared/api/samples)."""
    return (DATA / name).read_bytes()


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
