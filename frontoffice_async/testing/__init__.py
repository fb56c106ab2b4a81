"""Test your trading bot against `FrontOfficeSimulator`, a loopback Front Office server.

See docs/simulator.md; pytest users enable `frontoffice_async.testing.pytest_plugin`.
"""

from frontoffice_async.testing._book import SimulatedOrder
from frontoffice_async.testing._log import RecordedRequest, SimulatorStats
from frontoffice_async.testing._simulator import DEFAULT_ACCOUNT_ID, FrontOfficeSimulator
from frontoffice_async.testing.faults import Fault, FaultKind, FaultPlan

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "FrontOfficeSimulator",
    "RecordedRequest",
    "SimulatedOrder",
    "SimulatorStats",
]
