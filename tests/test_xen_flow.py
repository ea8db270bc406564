"""The seed's flow through real servers: local and IPI calls, fairness, and the invariants
(one entry in flight, CLEAR names the record read, a lost IPI reply retried, CPE polled,
an entry without progress injected again).

Who may call and bad requests: tests/test_xen_flow_api.py; dom0, the coordinator or a
pCPU gone and back: tests/test_xen_flow_recovery.py.
"""

from __future__ import annotations

import grpc
import pytest
from flow_harness import (
    CMC,
    CPE,
    EventWatch,
    FlowBed,
    ScriptedDom0,
)

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.rpc.identity import OPERATOR

FLOW_KINDS = {
    "injected",
    "get_local",
    "get_ipi",
    "record_copied",
    "clear_local",
    "clear_ipi",
    "entry_freed",
    "entry_requeued",
}


def flow(watch: EventWatch) -> list[tuple[str, int]]:
    return [(e["kind"], e["pcpu"]) for e in watch.events if e["kind"] in FLOW_KINDS]


@pytest.mark.xenmca(pcpus=2, vcpu0_pcpu=0)
async def test_seed_two_pcpu_figure_local_then_ipi(xenmca_coordinator: FlowBed) -> None:
    bed = xenmca_coordinator
    await bed.inject(0)
    await bed.watch.wait_for("entry_queued", pcpu=0)
    await bed.inject(1)
    await bed.watch.wait_for("entry_queued", pcpu=1)
    dom0 = ScriptedDom0(bed)

    first = await dom0.next_interrupt()
    assert first.type == CMC
    got = await dom0.get()
    assert got.sal_status == 0 and got.record.pcpu == 0 and not got.by_ipi
    cleared = await dom0.clear(got.record.record_id)
    assert cleared.sal_status == 0 and cleared.pcpu == 0 and not cleared.by_ipi

    second = await dom0.next_interrupt()
    assert second.injection_id == first.injection_id + 1
    got = await dom0.get()
    assert got.sal_status == 0 and got.record.pcpu == 1 and got.by_ipi
    cleared = await dom0.clear(got.record.record_id)
    assert cleared.sal_status == 0 and cleared.pcpu == 1 and cleared.by_ipi

    assert flow(bed.watch) == [
        ("injected", 0),
        ("get_local", 0),
        ("record_copied", 0),
        ("clear_local", 0),
        ("entry_freed", 0),
        ("injected", 1),
        ("get_ipi", 1),
        ("record_copied", 1),
        ("clear_ipi", 1),
        ("entry_freed", 1),
    ]
    assert (await bed.pending(0)).pending == 0
    assert (await bed.pending(1)).pending == 0
    counters = bed.coordinator.counters
    assert (counters.local_calls, counters.ipi_calls, counters.injections) == (2, 2, 2)
    await dom0.detach()


@pytest.mark.xenmca(pcpus=2)
async def test_next_injection_waits_for_clear(xenmca_coordinator: FlowBed) -> None:
    bed = xenmca_coordinator
    await bed.inject(0)
    await bed.inject(1)
    await bed.watch.wait_for("entry_queued", count=2)
    dom0 = ScriptedDom0(bed)
    await dom0.next_interrupt()
    got = await dom0.get()
    # Read but not cleared: nothing else may be injected.
    assert len(bed.watch.matching("injected")) == 1
    state = (
        await bed.hv.DescribeHypervisor(
            hv_pb2.DescribeHypervisorRequest(), metadata=bed.md(OPERATOR)
        )
    ).queues
    cmc = next(q for q in state if q.type == CMC)
    assert cmc.in_flight.state == hv_pb2.ENTRY_STATE_READ
    assert cmc.in_flight.record_id == got.record.record_id and cmc.depth == 1
    await dom0.clear(got.record.record_id)
    await bed.watch.wait_for("injected", count=2)
    await dom0.detach()


@pytest.mark.parametrize(
    "pipelined",
    [
        pytest.param(False, marks=pytest.mark.xenmca(pcpus=3), id="serial"),
        pytest.param(True, marks=pytest.mark.xenmca(pcpus=3, pipelined=True), id="pipelined"),
    ],
)
async def test_busy_pcpu_goes_to_the_tail_so_others_are_not_starved(
    pipelined: bool, xenmca_coordinator: FlowBed
) -> None:
    bed = xenmca_coordinator
    assert bed.coordinator.config.pipelined is pipelined
    await bed.inject(0, count=4)
    await bed.watch.wait_for("entry_queued", pcpu=0)
    await bed.inject(1)
    await bed.watch.wait_for("entry_queued", pcpu=1)
    await bed.inject(2)
    await bed.watch.wait_for("entry_queued", pcpu=2)
    dom0 = ScriptedDom0(bed)
    order = []
    for _ in range(6):
        await dom0.next_interrupt()
        got = await dom0.get()
        order.append(got.record.pcpu)
        await dom0.clear(got.record.record_id)
    assert order == [0, 1, 2, 0, 0, 0]
    await bed.watch.until(lambda: bed.coordinator.counters.records_cleared == 6)
    assert bed.coordinator.counters.requeues == 3
    await dom0.detach()


@pytest.mark.xenmca(pcpus=2, vcpu0_pcpu=0)
async def test_lost_ipi_reply_is_retried_and_never_clears_a_second_record(
    xenmca_coordinator: FlowBed,
) -> None:
    bed = xenmca_coordinator
    await bed.inject(1, count=2)
    await bed.watch.wait_for("entry_queued", pcpu=1)
    link = bed.coordinator.links[1]
    real_clear = link.stub.ClearStateInfo
    calls = []

    async def clear_then_lose_reply(request, **kwargs):
        reply = await real_clear(request, **kwargs)  # the pCPU acted...
        calls.append(request.record_id)
        if len(calls) == 1:  # ...but the first reply never arrives
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                "reply lost",
            )
        return reply

    link.stub.ClearStateInfo = clear_then_lose_reply
    dom0 = ScriptedDom0(bed)
    await dom0.next_interrupt()
    got = await dom0.get()
    cleared = await dom0.clear(got.record.record_id)
    assert cleared.sal_status == 0 and cleared.cleared_record_id == got.record.record_id
    assert calls == [got.record.record_id, got.record.record_id]
    state = await bed.pending(1)
    assert (state.pending, state.cleared) == (1, 1)
    assert bed.coordinator.counters.retries == 1
    # The second record is still delivered, and only then cleared.
    await dom0.next_interrupt()
    second = await dom0.get()
    assert second.record.record_id == got.record.record_id + 1
    await dom0.clear(second.record.record_id)
    assert (await bed.pending(1)).cleared == 2
    await dom0.detach()


@pytest.mark.xenmca(pcpus=1)
async def test_clear_names_the_record_read_or_nothing_is_cleared(
    xenmca_coordinator: FlowBed,
) -> None:
    bed = xenmca_coordinator
    await bed.inject(0, count=2)
    dom0 = ScriptedDom0(bed)
    await dom0.next_interrupt()
    # CLEAR before GET: nothing read, nothing cleared.
    assert (await dom0.clear(None)).sal_status == -5
    got = await dom0.get()
    wrong = await dom0.clear(got.record.record_id + 1)
    assert wrong.sal_status == -5
    assert (await bed.pending(0)).pending == 2
    assert (await dom0.clear(got.record.record_id)).sal_status == 0
    assert (await bed.pending(0)).pending == 1
    await dom0.detach()


@pytest.mark.xenmca(pcpus=2, vcpu0_pcpu=1)
async def test_placement_decides_local_or_ipi(xenmca_coordinator: FlowBed) -> None:
    bed = xenmca_coordinator
    await bed.inject(1)
    dom0 = ScriptedDom0(bed)
    await dom0.next_interrupt()
    got = await dom0.get()
    assert got.record.pcpu == 1 and not got.by_ipi
    await dom0.clear(got.record.record_id)
    await dom0.detach()


@pytest.mark.xenmca(pcpus=2)
async def test_cpe_is_polled_by_dom0_not_injected(tmp_path, xenmca_coordinator: FlowBed) -> None:
    bed = xenmca_coordinator
    await bed.inject(1, record_type=CPE, count=3)
    await bed.watch.wait_for("entry_queued", pcpu=1, type="CPE")
    dom0 = ScriptedDom0(bed)
    await bed.watch.wait_for("dom0_attached")
    got = await dom0.get(CPE)
    assert got.sal_status == 0 and got.record.type == CPE and got.by_ipi
    assert not bed.watch.matching("injected", type="CPE")
    assert (await dom0.clear(got.record.record_id, CPE)).sal_status == 0
    await dom0.detach()


@pytest.mark.xenmca(pcpus=2, reinject_after=0.4)
async def test_an_entry_without_progress_is_injected_again(xenmca_coordinator: FlowBed) -> None:
    bed = xenmca_coordinator
    await bed.inject(1)
    dom0 = ScriptedDom0(bed)
    first = await dom0.next_interrupt()  # ...and the interrupt is "lost": no GET follows
    again = await dom0.next_interrupt()
    assert again.reinjected and again.injection_id > first.injection_id
    assert bed.watch.matching("injected", why="no progress")
    got = await dom0.get()
    assert (await dom0.clear(got.record.record_id)).sal_status == 0
    assert (await bed.pending(1)).pending == 0
    await dom0.detach()
