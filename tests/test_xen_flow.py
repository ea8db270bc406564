"""The seed's flow through real servers: local and IPI calls, fairness, and the invariants."""

from __future__ import annotations

import grpc
import pytest
from flow_harness import (
    CMC,
    CPE,
    DOMU,
    EventWatch,
    FlowBed,
    ScriptedDom0,
    flow_bed,
    start_coordinator,
)

from xenmca.dom0.log_store import LogStore
from xenmca.dom0.logger import Dom0Logger
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.identity import DOM0, OPERATOR, XEN
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.xen.throttle_settings import PRESETS

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


@pytest.mark.xenmca(pcpus=1)
async def test_non_dom0_caller_reads_nothing_and_changes_nothing(
    xenmca_coordinator: FlowBed,
) -> None:
    bed = xenmca_coordinator
    await bed.inject(0)
    dom0 = ScriptedDom0(bed)
    await dom0.next_interrupt()
    got = await bed.hv.GetStateInfo(hv_pb2.GetStateInfoRequest(type=CMC), metadata=bed.md(DOMU))
    assert got.sal_status == -5 and not got.HasField("record")
    cleared = await bed.hv.ClearStateInfo(
        hv_pb2.ClearStateInfoRequest(type=CMC), metadata=bed.md(DOMU)
    )
    assert cleared.sal_status == -5
    size = await bed.hv.GetStateInfoSize(
        hv_pb2.GetStateInfoSizeRequest(type=CMC), metadata=bed.md(DOMU)
    )
    assert size.sal_status == -5 and size.size == 0
    assert bed.coordinator.counters.refused_calls == 3
    assert (await bed.pending(0)).pending == 1
    assert bed.coordinator.queues[CMC].in_flight.record_id == 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bed.hv.GetStateInfo(hv_pb2.GetStateInfoRequest(type=CMC))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info_of(caught.value).reason == "MISSING_CREDENTIALS"
    # dom0 itself still reads it.
    assert (await dom0.get()).sal_status == 0
    await dom0.detach()


@pytest.mark.xenmca(pcpus=4)
async def test_get_state_info_size_is_one_record_not_times_pcpus(
    xenmca_coordinator: FlowBed,
) -> None:
    bed = xenmca_coordinator
    size = await bed.hv.GetStateInfoSize(
        hv_pb2.GetStateInfoSizeRequest(type=CMC), metadata=bed.dom0_md
    )
    sal_size = await bed.sal(0).GetStateInfoSize(
        sal_pb2.GetStateInfoSizeRequest(type=CMC), metadata=bed.md(XEN)
    )
    assert size.sal_status == 0 and size.size == sal_size.size > 0


@pytest.mark.xenmca(pcpus=2)
async def test_bad_requests_get_invalid_argument_with_error_info(
    xenmca_coordinator: FlowBed,
) -> None:
    bed = xenmca_coordinator
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bed.hv.GetStateInfo(hv_pb2.GetStateInfoRequest(type=0), metadata=bed.dom0_md)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info_of(caught.value).reason == "INVALID_RECORD_TYPE"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bed.hv.SetVcpuPlacement(
            hv_pb2.SetVcpuPlacementRequest(pcpu=7), metadata=bed.md(OPERATOR)
        )
    assert error_info_of(caught.value).reason == "UNKNOWN_PCPU"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bed.hv.SetVcpuPlacement(hv_pb2.SetVcpuPlacementRequest(pcpu=1), metadata=bed.dom0_md)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert bed.coordinator.vcpu0_pcpu == 0
    moved = await bed.hv.SetVcpuPlacement(
        hv_pb2.SetVcpuPlacementRequest(pcpu=1), metadata=bed.md(OPERATOR)
    )
    assert moved.previous_pcpu == 0 and bed.coordinator.vcpu0_pcpu == 1


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
async def test_dom0_gone_between_get_and_clear_record_logged_once(
    tmp_path, xenmca_coordinator: FlowBed
) -> None:
    bed = xenmca_coordinator
    await bed.inject(1)
    first = ScriptedDom0(bed, "first")
    await first.next_interrupt()
    got = await first.get()
    await first.detach()
    await bed.watch.wait_for("dom0_detached")
    store = await LogStore.open(tmp_path / "dom0.sqlite")
    logger = Dom0Logger(bed.xen_address, store, token=bed.tokens.token_for(DOM0))
    await logger.start()
    try:
        await bed.watch.wait_for("entry_freed", pcpu=1)
    finally:
        await logger.stop()
    records = await store.list_records()
    assert [(r.pcpu, r.record_id) for r in records] == [(1, got.record.record_id)]
    assert bed.watch.matching("injected", reinjected=True)
    assert (await bed.pending(1)).pending == 0
    await store.close()


@pytest.mark.xenmca(pcpus=2)
async def test_dom0_gone_between_commit_and_clear_drops_the_duplicate(
    tmp_path, xenmca_coordinator: FlowBed
) -> None:
    bed = xenmca_coordinator
    await bed.inject(1)
    store = await LogStore.open(tmp_path / "dom0.sqlite")
    first = ScriptedDom0(bed, "first")
    await first.next_interrupt()
    got = await first.get()
    assert await store.commit(got.record)  # durable, then dom0 dies before CLEAR
    await first.detach()
    await bed.watch.wait_for("dom0_detached")
    logger = Dom0Logger(bed.xen_address, store, token=bed.tokens.token_for(DOM0))
    await logger.start()
    try:
        await bed.watch.wait_for("entry_freed", pcpu=1)
    finally:
        await logger.stop()
    assert len(await store.list_records()) == 1
    assert await store.duplicates_dropped() == 1
    assert (await bed.pending(1)).pending == 0
    await store.close()


@pytest.mark.xenmca(pcpus=3)
async def test_coordinator_restart_rebuilds_queues_from_pending_records(
    tmp_path, xenmca_coordinator: FlowBed
) -> None:
    bed = xenmca_coordinator
    for pcpu in range(3):
        await bed.inject(pcpu, count=2)
    await bed.watch.wait_for("entry_queued", count=3)
    await bed.built.server.stop(0)
    await bed.coordinator.stop()
    watch = EventWatch()
    coordinator, built, address = await start_coordinator(bed.host.addresses, bed.tokens, watch)
    store = await LogStore.open(tmp_path / "dom0.sqlite")
    logger = Dom0Logger(address, store, token=bed.tokens.token_for(DOM0))
    await logger.start()
    try:
        await watch.wait_for("entry_freed", count=3)
        assert len(watch.matching("entry_queued", why="reconcile")) == 3
        await watch.until(lambda: coordinator.counters.records_cleared == 6)
    finally:
        await logger.stop()
        await built.server.stop(0)
        await coordinator.stop()
    assert len(await store.list_records()) == 6
    await store.close()


@pytest.mark.xenmca(pcpus=3, vcpu0_pcpu=0)
async def test_unreachable_pcpu_delays_only_its_own_entries(
    tmp_path, xenmca_coordinator: FlowBed
) -> None:
    bed = xenmca_coordinator
    await bed.inject(1, count=2)
    await bed.watch.wait_for("entry_queued", pcpu=1)
    stopped = await bed.stop_pcpu(1)
    await bed.inject(0, count=2)
    await bed.inject(2, count=2)
    store = await LogStore.open(tmp_path / "dom0.sqlite")
    logger = Dom0Logger(bed.xen_address, store, token=bed.tokens.token_for(DOM0))
    await logger.start()
    try:
        await bed.watch.until(lambda: bed.coordinator.counters.records_cleared >= 4, within=20)
        logged = {(r.pcpu, r.record_id) for r in await store.list_records()}
        assert {pcpu for pcpu, _ in logged} == {0, 2}
        assert bed.watch.matching("entry_requeued", pcpu=1, why="call_failed")
        await bed.restart_pcpu(stopped)
        await bed.watch.until(lambda: bed.coordinator.counters.records_cleared >= 6, within=20)
    finally:
        await logger.stop()
    records = await store.list_records()
    assert sorted(r.pcpu for r in records) == [0, 0, 1, 1, 2, 2]
    await store.close()


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


async def test_restarted_coordinator_unmasks_a_line_left_masked_by_its_predecessor() -> None:
    slow_polls = PRESETS["linux-ia64"]  # the line stays in polling mode for 60 s
    async with flow_bed(pcpus=2, throttle=slow_polls) as bed:
        await bed.inject(1, count=10)  # 10 interrupts at once: a storm
        await bed.watch.wait_for("line_masked", pcpu=1)
        state = await bed.sal(1).DescribePcpu(
            sal_pb2.DescribePcpuRequest(), metadata=bed.md(OPERATOR)
        )
        assert next(t for t in state.types if t.type == CMC).masked
        await bed.built.server.stop(0)
        await bed.coordinator.stop()
        watch = EventWatch()
        coordinator, built, _ = await start_coordinator(
            bed.host.addresses, bed.tokens, watch, throttle=slow_polls
        )
        try:
            await watch.wait_for("mask_aligned", pcpu=1, masked=False)
            await bed.inject(1)
            await watch.wait_for("interrupt_received", pcpu=1)
        finally:
            await built.server.stop(0)
            await coordinator.stop()


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
