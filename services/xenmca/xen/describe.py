"""DescribeHypervisor: the coordinator's state as one message."""

from __future__ import annotations

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.xen.coordinator import Coordinator
from xenmca.xen.queues import Entry, State

_ENTRY_STATES = {
    State.QUEUED: hv_pb2.ENTRY_STATE_QUEUED,
    State.INJECTED: hv_pb2.ENTRY_STATE_INJECTED,
    State.READ: hv_pb2.ENTRY_STATE_READ,
}


MAX_LISTED_ENTRIES = 4096


def _entry(entry: Entry) -> hv_pb2.QueueEntry:
    return hv_pb2.QueueEntry(
        pcpu=entry.pcpu,
        state=_ENTRY_STATES[entry.state],
        record_id=entry.record_id,
        sal_type=entry.sal_type,  # type: ignore[arg-type]
    )


def describe(coordinator: Coordinator) -> hv_pb2.DescribeHypervisorResponse:
    response = hv_pb2.DescribeHypervisorResponse(
        vcpu0_pcpu=coordinator.vcpu0_pcpu,
        dom0_attached=coordinator.session is not None,
        counters=coordinator.counters.to_proto(),
        injected_types=sorted(coordinator.config.injected_types),  # type: ignore[arg-type]
        policy=hv_pb2.PolicyDescription(
            name=coordinator.config.policy.name,
            label=coordinator.config.policy.label,
            choices=coordinator.strategies.choices,
            sal_mode=coordinator.config.sal_mode,
        ),
    )
    for link in coordinator.links.values():
        response.pcpus.add(
            pcpu=link.pcpu, address=link.address, connected=link.connected, connects=link.connects
        )
    for record_type, queue in coordinator.queues.items():
        type_queue = response.queues.add(
            type=record_type,  # type: ignore[arg-type]
            depth=len(queue),
            virq_pending=coordinator.delivery.pending(record_type),
        )
        if queue.in_flight is not None:
            type_queue.in_flight.CopyFrom(_entry(queue.in_flight))
        for index, entry in enumerate(queue):
            if index >= MAX_LISTED_ENTRIES:
                break
            type_queue.entries.append(_entry(entry))
    for line in coordinator.throttle_lines():
        response.throttle.append(line)
    return response
