"""Shared by the HypervisorService fuzz tests (test_fuzz_hypervisor*.py): the pCPUs, the
refusal codes, seeding records and waiting until the coordinator has queued them."""

from __future__ import annotations

import grpc
from fuzz_strategies import RECORD_TYPES
from test_fuzz_support import FuzzBed

PCPUS = (0, 1, 2)
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED


async def seed(bed: FuzzBed, per_type: int = 2) -> None:
    for pcpu in bed.pcpus:
        for record_type in RECORD_TYPES:
            await bed.flow.inject(pcpu, count=per_type, record_type=record_type)


async def wait_queued(bed: FuzzBed) -> None:
    """Until every pCPU with records pending has an entry for the type (or one in flight)."""
    coordinator = bed.flow.coordinator

    def queued() -> bool:
        for pcpu, server in bed.flow.host.servers.items():
            for record_type in RECORD_TYPES:
                if server.firmware.store.pending_count(record_type) and not coordinator.queues[
                    record_type
                ].has(pcpu):
                    return False
        return True

    await bed.flow.watch.until(queued)
