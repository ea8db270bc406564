"""The seed's flow through real servers when a part goes away and comes back: dom0 gone
between GET and CLEAR or between its commit and CLEAR (each record logged once), a
restarted coordinator (queues rebuilt from the pending records, a masked line unmasked),
an unreachable pCPU (only its own entries wait).
"""

from __future__ import annotations

import pytest
from flow_harness import (
    CMC,
    EventWatch,
    FlowBed,
    ScriptedDom0,
    flow_bed,
    start_coordinator,
)

from xenmca.dom0.log_store import LogStore
from xenmca.dom0.logger import Dom0Logger
from xenmca.rpc.identity import DOM0, OPERATOR
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.xen.throttle_settings import PRESETS


async def log_until_freed(bed: FlowBed, store: LogStore, pcpu: int) -> None:
    """A new dom0 (a real Dom0Logger into store) runs until pcpu's entry is freed."""
    logger = Dom0Logger(bed.xen_address, store, token=bed.tokens.token_for(DOM0))
    await logger.start()
    try:
        await bed.watch.wait_for("entry_freed", pcpu=pcpu)
    finally:
        await logger.stop()


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
    await log_until_freed(bed, store, pcpu=1)
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
    await log_until_freed(bed, store, pcpu=1)
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
