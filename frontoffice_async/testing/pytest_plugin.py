"""pytest fixtures that hand each test a running `FrontOfficeSimulator`.

Enable with `pytest_plugins = ["frontoffice_async.testing.pytest_plugin"]` in a conftest.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import pytest_asyncio

from frontoffice_async.testing._simulator import FrontOfficeSimulator

__all__ = ["SimulatorFactory", "frontoffice_simulator", "frontoffice_simulator_factory"]


class SimulatorFactory(Protocol):
    """The type of `frontoffice_simulator_factory`: `await factory(**kwargs)`."""

    async def __call__(self, **kwargs: Any) -> FrontOfficeSimulator:
        """Start a `FrontOfficeSimulator(**kwargs)`; it is closed when the test ends."""
        ...


@pytest_asyncio.fixture
async def frontoffice_simulator() -> AsyncIterator[FrontOfficeSimulator]:
    """A started simulator with default settings, closed after the test.

    For example:

    ```python
    async def test_cancel(frontoffice_simulator):
        order_id = frontoffice_simulator.add_orders(1)[0]
        ...  # cancel it with your client against frontoffice_simulator.url
        assert frontoffice_simulator.orders[order_id].status == "Cancelled"
    ```
    """
    async with FrontOfficeSimulator() as simulator:
        yield simulator


@pytest_asyncio.fixture
async def frontoffice_simulator_factory() -> AsyncIterator[SimulatorFactory]:
    """An async factory of started simulators, for tests that need settings or several.

    Every simulator it made is closed after the test.

    For example:

    ```python
    async def test_retries(frontoffice_simulator_factory):
        sim = await frontoffice_simulator_factory(faults=FaultPlan.uniform(0.3), seed=4)
    ```
    """
    started: list[FrontOfficeSimulator] = []

    async def factory(**kwargs: Any) -> FrontOfficeSimulator:
        simulator = FrontOfficeSimulator(**kwargs)
        await simulator.start()
        started.append(simulator)
        return simulator

    try:
        yield factory
    finally:
        for simulator in reversed(started):
            await simulator.close()
