"""Rich tables for `xenmca status`."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.vocab import type_name

_ENTRY = {1: "queued", 2: "injected", 3: "read"}
_MODE = {1: "interrupt", 2: "polling"}
_SAL_MODE = {sal_pb2.SAL_MODE_EXTENDED: "extended", sal_pb2.SAL_MODE_PLAIN: "plain"}


def print_hypervisor(state: hv_pb2.DescribeHypervisorResponse) -> None:
    console = Console()
    connected = sum(1 for link in state.pcpus if link.connected)
    console.print(
        f"pCPUs: {len(state.pcpus)} ({connected} connected)   vCPU0 on pCPU {state.vcpu0_pcpu}"
        f"   dom0: {'attached' if state.dom0_attached else 'not attached'}"
        f"   injected: {', '.join(type_name(t) for t in state.injected_types)}"
    )
    if state.HasField("policy"):
        console.print(
            f"policy: {state.policy.label or state.policy.name}   "
            f"firmware: {state.policy.sal_mode or 'extended'} SAL   "
            + "  ".join(f"{k}={v}" for k, v in sorted(state.policy.choices.items())),
            highlight=False,
        )
    queues = Table(title="queues")
    for column in ("type", "depth", "in flight"):
        queues.add_column(column)
    for queue in state.queues:
        flight = "-"
        if queue.HasField("in_flight"):
            entry = queue.in_flight
            flight = f"pCPU {entry.pcpu} {_ENTRY.get(entry.state, '?')}"
            if entry.record_id:
                flight += f" record {entry.record_id}"
        queues.add_row(type_name(queue.type), str(queue.depth), flight)
    console.print(queues)
    counters = Table(title="counters")
    counters.add_column("counter")
    counters.add_column("value", justify="right")
    for field, value in state.counters.ListFields():
        counters.add_row(field.name, str(value))
    console.print(counters)
    polling = [line for line in state.throttle if line.mode == hv_pb2.THROTTLE_MODE_POLLING]
    lines = Table(title=f"throttle: {len(polling)} of {len(state.throttle)} lines polling")
    for column in ("pCPU", "line", "mode", "interval", "transitions"):
        lines.add_column(column)
    shown = polling or [line for line in state.throttle if line.transitions][:32]
    for line in shown:
        interval = line.poll_interval.ToTimedelta().total_seconds()
        lines.add_row(
            str(line.pcpu),
            type_name(line.type),
            _MODE.get(line.mode, "?"),
            f"{interval:g}s" if interval else "-",
            str(line.transitions),
        )
    console.print(lines)


def print_pcpu(state: sal_pb2.DescribePcpuResponse) -> None:
    console = Console()
    console.print(
        f"pCPU {state.pcpu}   next record id {state.next_record_id}"
        f"   store: {'durable' if state.durable else 'in memory'}"
        f"   sal: {_SAL_MODE.get(state.sal_mode, 'unknown')}"
    )
    table = Table()
    for column in (
        "type",
        "pending",
        "capacity",
        "masked",
        "created",
        "cleared",
        "overflowed",
        "interrupts",
    ):
        table.add_column(column)
    for t in state.types:
        table.add_row(
            type_name(t.type),
            str(t.pending),
            str(t.capacity),
            "yes" if t.masked else "no",
            str(t.created),
            str(t.cleared),
            str(t.overflowed),
            str(t.interrupts_raised),
        )
    console.print(table)
