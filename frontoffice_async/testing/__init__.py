"""Test your trading bot against `FrontOfficeSimulator`, a loopback Front Office server.

See docs/simulator.md; the pytest fixtures load by themselves once the package is installed.
"""

from frontoffice_async.testing._log import RecordedRequest, SimulatorStats
from frontoffice_async.testing._order import SimulatedOrder
from frontoffice_async.testing._position import SimulatedPosition
from frontoffice_async.testing._simulator import DEFAULT_ACCOUNT_ID, FrontOfficeSimulator
from frontoffice_async.testing.faults import Fault, FaultKind, FaultPlan, HubFault, HubFaultKind

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "FrontOfficeSimulator",
    "HubFault",
    "HubFaultKind",
    "RecordedRequest",
    "SimulatedOrder",
    "SimulatedPosition",
    "SimulatorStats",
]
