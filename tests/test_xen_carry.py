"""The next virtual interrupt on the CLEAR's reply (ClearStateInfoRequest.carry_interrupt_for).

A tracked type's next entry is injected once the entry in flight is cleared (the
seed's step 5). When dom0's CLEAR names the instance it attached as, that injection
comes on the CLEAR's reply instead of the AttachDom0 stream: one stream message fewer
per record, and none on dom0's serial loop. A CLEAR that names another instance, or
none, leaves every interrupt on the stream; a CLEAR repeated after its reply was lost
gets the carried interrupt again; dom0's logger asks for it and logs everything.
"""

from __future__ import annotations

import grpc
import pytest
from flow_harness import CMC, EventWatch, FlowBed, ScriptedDom0
from test_faults_flow import DROP_REPLY, add_fault

from xenmca.dom0.log_store import LogStore
from xenmca.dom0.logger import Dom0Logger
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.rpc.events import EventLog
from xenmca.rpc.identity import DOM0


async def _read_and_clear(dom0: ScriptedDom0, carry_for: str) -> tuple[int, object]:
    got = await dom0.get()
    assert got.sal_status == 0
    cleared = await dom0.clear(got.record.record_id, carry_for=carry_for)
    assert cleared.sal_status == 0 and cleared.cleared_record_id == got.record.record_id
    return got.record.record_id, cleared


async def _attached_with_three_records(
    bed: FlowBed,
) -> tuple[ScriptedDom0, hv_pb2.AttachDom0Response]:
    """Three records on pCPU 1 (by IPI), dom0 "d1" attached: it and the first interrupt."""
    await bed.inject(1, count=3)
    await bed.watch.wait_for("entry_queued", pcpu=1)
    dom0 = ScriptedDom0(bed, instance="d1")
    return dom0, await dom0.next_interrupt()


@pytest.mark.xenmca(pcpus=2, vcpu0_pcpu=0)
async def test_the_next_interrupt_comes_on_the_clear_reply_not_the_stream(
    xenmca_coordinator: FlowBed,
) -> None:
    bed = xenmca_coordinator
    dom0, first = await _attached_with_three_records(bed)
    ids = [first.injection_id]
    for _ in range(3):
        _, cleared = await _read_and_clear(dom0, "d1")
        if cleared.HasField("next_interrupt"):  # type: ignore[attr-defined]
            carried = cleared.next_interrupt  # type: ignore[attr-defined]
            assert carried.type == CMC and not carried.reinjected
            ids.append(carried.injection_id)
    # Three records: the first interrupt on the stream, the next two on CLEAR replies.
    assert ids == [ids[0], ids[0] + 1, ids[0] + 2]
    injected = bed.watch.matching("injected", pcpu=1)
    assert [e["via"] for e in injected] == ["stream", "clear reply", "clear reply"]
    # The carried ones were not also streamed: the next stream message is a new record's.
    await bed.inject(1)
    assert (await dom0.next_interrupt()).injection_id == ids[-1] + 1
    await dom0.detach()


@pytest.mark.xenmca(pcpus=2, vcpu0_pcpu=0)
async def test_a_clear_for_another_instance_or_none_leaves_interrupts_on_the_stream(
    xenmca_coordinator: FlowBed,
) -> None:
    bed = xenmca_coordinator
    dom0, previous = await _attached_with_three_records(bed)
    for carry_for in ("someone-else", ""):
        _, cleared = await _read_and_clear(dom0, carry_for)
        assert not cleared.HasField("next_interrupt")  # type: ignore[attr-defined]
        streamed = await dom0.next_interrupt()
        assert streamed.injection_id == previous.injection_id + 1
        previous = streamed
    assert {e["via"] for e in bed.watch.matching("injected", pcpu=1)} == {"stream"}
    await dom0.detach()


@pytest.mark.xenmca(pcpus=2, vcpu0_pcpu=0)
async def test_a_clear_repeated_after_its_lost_reply_carries_the_interrupt_again(
    xenmca_coordinator: FlowBed,
) -> None:
    bed = xenmca_coordinator
    await add_fault(
        bed, bed.xen_address, method="HypervisorService.ClearStateInfo", action=DROP_REPLY, count=1
    )
    await bed.inject(1, count=2)
    await bed.watch.wait_for("entry_queued", pcpu=1)
    dom0 = ScriptedDom0(bed, instance="d1")
    first = await dom0.next_interrupt()
    got = await dom0.get()
    with pytest.raises(grpc.aio.AioRpcError):  # the coordinator cleared; the reply is lost
        await dom0.clear(got.record.record_id, carry_for="d1")
    repeated = await dom0.clear(got.record.record_id, carry_for="d1")
    assert repeated.sal_status == 0 and repeated.already_cleared
    assert repeated.next_interrupt.injection_id == first.injection_id + 1
    # It stands for the second record, which the next GET reads.
    second = await dom0.get()
    assert second.sal_status == 0 and second.record.record_id != got.record.record_id
    assert [e["via"] for e in bed.watch.matching("injected", pcpu=1)] == ["stream", "clear reply"]
    await dom0.detach()


@pytest.mark.xenmca(pcpus=2, vcpu0_pcpu=0)
async def test_dom0_logs_every_record_with_interrupts_on_clear_replies(
    tmp_path, xenmca_coordinator: FlowBed
) -> None:
    bed = xenmca_coordinator
    events, watch = EventLog("dom0"), EventWatch()
    events.subscribe(watch)
    store = await LogStore.open(tmp_path / "dom0.sqlite")
    logger = Dom0Logger(
        bed.xen_address, store, token=bed.tokens.token_for(DOM0), events=events, instance="d1"
    )
    await logger.start()
    try:
        await bed.inject(1, count=5)
        await bed.inject(0, count=5)
        await watch.wait_for("record_cleared", count=10, sal_status=0)
    finally:
        await logger.stop()
        await store.close()
    assert logger.counters.records_logged == 10
    received = watch.matching("interrupt_received")
    assert len(received) == 10 and sum(e["via"] == "clear reply" for e in received) >= 8
    assert (await bed.pending(0)).pending == 0 and (await bed.pending(1)).pending == 0
