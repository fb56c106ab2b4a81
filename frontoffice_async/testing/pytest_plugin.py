"""pytest fixtures that hand each test a running `FrontOfficeSimulator`.

Installing frontoffice-async registers this plugin with pytest (a `pytest11` entry point), so
`frontoffice_simulator` and `frontoffice_simulator_factory` need no configuration. They are
async fixtures run by pytest-asyncio: `pip install "frontoffice-async[testing]"`. Without
pytest-asyncio the plugin still loads, and a test that asks for a fixture fails saying so.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn, Protocol, TypeVar

import pytest

from frontoffice_async.testing._simulator import FrontOfficeSimulator

__all__ = ["SimulatorFactory", "frontoffice_simulator", "frontoffice_simulator_factory"]

_MISSING_PYTEST_ASYNCIO = (
    "the {name} fixture needs pytest-asyncio, which is not installed: "
    "pip install 'frontoffice-async[testing]'"
)

_Fixture = TypeVar("_Fixture", bound=Callable[[], AsyncIterator[Any]])


def _async_fixture(func: _Fixture) -> _Fixture:
    """`pytest_asyncio.fixture(func)`, or without pytest-asyncio a fixture that explains.

    pytest-asyncio is imported here rather than at the top: this module is loaded by every
    pytest run of an environment that has frontoffice-async, and must not break one that
    lacks the `testing` extra.
    """
    try:
        pytest_asyncio = importlib.import_module("pytest_asyncio")
    except ImportError:

        def explain() -> NoReturn:
            pytest.fail(_MISSING_PYTEST_ASYNCIO.format(name=func.__name__), pytrace=False)

        # No functools.wraps: pytest would follow __wrapped__ to the async function.
        explain.__name__ = explain.__qualname__ = func.__name__
        explain.__doc__ = func.__doc__
        return pytest.fixture(explain)  # type: ignore[return-value]
    fixture: _Fixture = pytest_asyncio.fixture(func)
    return fixture


class SimulatorFactory(Protocol):
    """The type of `frontoffice_simulator_factory`: `await factory(**kwargs)`."""

    async def __call__(self, **kwargs: Any) -> FrontOfficeSimulator:
        """Start a `FrontOfficeSimulator(**kwargs)`; it is closed when the test ends."""
        ...


@_async_fixture
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


@_async_fixture
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
