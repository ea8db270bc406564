"""The coordinator's counters, as DescribeHypervisor reports them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2


@dataclass
class Counters:
    interrupts: int = 0
    injections: int = 0
    local_calls: int = 0
    ipi_calls: int = 0
    retries: int = 0
    records_copied: int = 0
    records_cleared: int = 0
    requeues: int = 0
    call_failures: int = 0
    refused_calls: int = 0
    polls: int = 0
    polled_records: int = 0
    virqs_coalesced: int = 0

    def to_proto(self) -> hv_pb2.Counters:
        return hv_pb2.Counters(**asdict(self))
