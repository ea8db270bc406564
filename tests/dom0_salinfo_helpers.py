"""Shared by the linux-salinfo tests: the two severities, ``watch_firmware`` (the pCPUs'
firmware events into the bed's watch) and ``inject`` (an operator InjectError of a severity).
"""

from __future__ import annotations

from flow_harness import CMC, FlowBed

from xenmca.record.v1 import record_pb2
from xenmca.rpc.events import EventLog
from xenmca.rpc.identity import OPERATOR
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2

CORRECTED = record_pb2.SEVERITY_CORRECTED
RECOVERABLE = record_pb2.SEVERITY_RECOVERABLE


def watch_firmware(bed: FlowBed) -> None:
    """Send every pCPU's firmware events (record_cleared, ...) to the bed's watch."""
    events = EventLog("pcpu")
    events.subscribe(bed.watch)
    for server in bed.host.servers.values():
        server.firmware.events = events


async def inject(bed: FlowBed, pcpu: int, severity: int, count: int = 1, kind: int = CMC) -> None:
    await bed.sal(pcpu).InjectError(
        sal_pb2.InjectErrorRequest(type=kind, severity=severity, count=count),  # type: ignore[arg-type]
        metadata=bed.md(OPERATOR),
    )
