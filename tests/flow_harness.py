"""The in-process coordinator harness the tests import, now from the package (xenmca.testing).

pCPU servers, the coordinator and a scripted dom0 on the test's event loop, real
gRPC servers on port 0, waits on events: `flow_bed` and `FlowBed`
(xenmca.testing.flow), `start_coordinator` and `FAST_RETRY` (xenmca.testing.coordinator),
`EventWatch` (xenmca.testing.events), `ScriptedDom0` (xenmca.testing.scripted_dom0).
"""

from xenmca.testing.coordinator import FAST_RETRY, start_coordinator
from xenmca.testing.events import EventWatch
from xenmca.testing.flow import CMC, CPE, DOMU, FlowBed, flow_bed
from xenmca.testing.scripted_dom0 import ScriptedDom0

__all__ = [
    "CMC",
    "CPE",
    "DOMU",
    "FAST_RETRY",
    "EventWatch",
    "FlowBed",
    "ScriptedDom0",
    "flow_bed",
    "start_coordinator",
]
