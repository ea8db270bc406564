"""Per-RPC faults in the real flow (pCPU hosts, coordinator, dom0), added through FaultService."""

from __future__ import annotations

import grpc
import pytest
from flow_harness import CMC, EventWatch, FlowBed, ScriptedDom0
from google.protobuf import duration_pb2

from xenmca.dom0.log_store import LogStore
from xenmca.dom0.logger import Dom0Logger
from xenmca.fault.v1 import fault_service_pb2 as fault_pb2
from xenmca.fault.v1 import fault_service_pb2_grpc as fault_grpc
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.rpc.channels import open_channel
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.events import EventLog
from xenmca.rpc.fault_rules import INJECTED_FAULT
from xenmca.rpc.identity import DOM0, OPERATOR
from xenmca.testbed.infra import fault_client

DROP_REPLY = fault_pb2.FAULT_ACTION_DROP_REPLY
FAIL = fault_pb2.FAULT_ACTION_FAIL


async def add_fault(bed: FlowBed, address: str, **rule: object) -> str:
    """Add a rule through the real FaultService (operator token) of the process at address."""
    async with open_channel(address) as channel:
        reply = await fault_grpc.FaultServiceStub(channel).AddFault(
            fault_pb2.AddFaultRequest(rule=fault_pb2.FaultRule(**rule)),  # type: ignore[arg-type]
            metadata=bed.md(OPERATOR),
        )
    return str(reply.fault_id)


@pytest.mark.xenmca(pcpus=2, vcpu0_pcpu=0)
async def test_dropped_clear_reply_is_retried_by_id_and_clears_one_record(
    xenmca_coordinator: FlowBed,
) -> None:
    bed = xenmca_coordinator
    fault_id = await add_fault(
        bed,
        bed.host.addresses[0],  # any pCPU of the host: the rules are the host's
        method="SalService.ClearStateInfo",
        pcpu=1,
        action=DROP_REPLY,
        count=1,
    )
    await bed.inject(1, count=2)
    await bed.watch.wait_for("entry_queued", pcpu=1)
    dom0 = ScriptedDom0(bed)
    await dom0.next_interrupt()
    got = await dom0.get()
    assert got.by_ipi
    cleared = await dom0.clear(got.record.record_id)
    assert cleared.sal_status == 0 and cleared.cleared_record_id == got.record.record_id
    state = await bed.pending(1)
    assert (state.pending, state.cleared) == (1, 1)  # one CLEAR, one record
    assert bed.coordinator.counters.retries == 1
    (fault,) = bed.host.faults.list()
    assert (fault.fault_id, fault.fired, fault.expired) == (fault_id, 1, True)
    # The second record is still delivered, and only then cleared.
    await dom0.next_interrupt()
    second = await dom0.get()
    assert second.record.record_id == got.record.record_id + 1
    await dom0.clear(second.record.record_id)
    assert (await bed.pending(1)).cleared == 2
    await dom0.detach()


@pytest.mark.xenmca(pcpus=2, vcpu0_pcpu=0)
async def test_fail_first_two_gets_the_third_attempt_succeeds(xenmca_coordinator: FlowBed) -> None:
    bed = xenmca_coordinator
    await add_fault(
        bed,
        bed.host.addresses[1],
        method="xenmca.sal.v1.SalService/GetStateInfo",
        pcpu=1,
        action=FAIL,
        skip=0,
        count=2,
    )
    await bed.inject(1)
    await bed.watch.wait_for("entry_queued", pcpu=1)
    dom0 = ScriptedDom0(bed)
    await dom0.next_interrupt()
    got = await dom0.get()
    assert got.sal_status == 0 and got.record.pcpu == 1
    assert bed.coordinator.counters.retries == 2
    # Both retries were for the injected UNAVAILABLEs.
    assert [e["error"] for e in bed.watch.matching("call_retry", pcpu=1)] == [
        "UNAVAILABLE",
        "UNAVAILABLE",
    ]
    await dom0.clear(got.record.record_id)
    assert (await bed.pending(1)).pending == 0
    await dom0.detach()


@pytest.mark.xenmca(pcpus=2, vcpu0_pcpu=0)
async def test_dom0_logs_everything_once_under_lost_replies_and_failures(
    tmp_path, xenmca_coordinator: FlowBed
) -> None:
    bed = xenmca_coordinator
    address = bed.host.addresses[0]
    await add_fault(
        bed, address, method="SalService.ClearStateInfo", pcpu=1, action=DROP_REPLY, count=3
    )
    await add_fault(
        bed, address, method="SalService.GetStateInfo", pcpu=1, action=FAIL, skip=1, count=2
    )
    await bed.inject(0, count=4)
    await bed.inject(1, count=4)
    store = await LogStore.open(tmp_path / "dom0.sqlite")
    logger = Dom0Logger(bed.xen_address, store, token=bed.tokens.token_for(DOM0))
    await logger.start()
    try:
        await bed.watch.until(lambda: bed.coordinator.counters.records_cleared == 8)
    finally:
        await logger.stop()
    records = await store.list_records()
    assert sorted((r.pcpu, r.record_id) for r in records) == [
        (pcpu, rid) for pcpu in (0, 1) for rid in range(1, 5)
    ]
    assert await store.duplicates_dropped() == 0
    for pcpu in (0, 1):
        state = await bed.pending(pcpu)
        assert (state.pending, state.cleared) == (0, 4)
    assert [f.fired for f in bed.host.faults.list()] == [3, 2]
    assert bed.coordinator.counters.retries == 5
    await store.close()


@pytest.mark.xenmca(pcpus=2)
async def test_coordinator_serves_its_own_fault_rules(xenmca_coordinator: FlowBed) -> None:
    bed = xenmca_coordinator
    assert bed.built.faults is not None
    fault_id = await fault_client.add_fault(
        bed.xen_address,
        {"method": "HypervisorService.AttachDom0", "action": "drop-reply", "count": 1},
        bed.md(OPERATOR),
    )
    await bed.inject(1)
    await bed.watch.wait_for("entry_queued", pcpu=1)
    first = ScriptedDom0(bed, "first")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await first.next_interrupt()  # injected, then lost with the stream
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    info = error_info_of(caught.value)
    assert info is not None and info.reason == INJECTED_FAULT
    assert info.metadata["fault_id"] == fault_id and "pcpu" not in info.metadata
    fired = bed.watch.matching("fault_fired")
    assert [(e["fault_id"], e["pcpu"], e["action"]) for e in fired] == [
        (fault_id, None, "drop-reply")
    ]
    second = ScriptedDom0(bed, "second")
    await second.next_interrupt()  # the entry in flight is injected again
    got = await second.get()
    assert got.record.pcpu == 1
    await second.clear(got.record.record_id)
    assert (await bed.pending(1)).pending == 0
    await second.detach()
    listed = await fault_client.list_faults(bed.xen_address, bed.md(OPERATOR))
    assert [(f["fault_id"], f["fired"], f["expired"]) for f in listed] == [(fault_id, 1, True)]
    assert await fault_client.clear_faults(bed.xen_address, bed.md(OPERATOR)) == 1


@pytest.mark.xenmca(pcpus=1)
@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ({"method": "SalService.ClearStateInfo", "action": FAIL}, "METHOD_NOT_SERVED"),
        ({"method": "HypervisorService.GetStateInfo", "action": FAIL, "pcpu": 0}, "UNKNOWN_PCPU"),
    ],
)
async def test_coordinator_refuses_rules_it_could_never_apply(
    rule: dict[str, object], reason: str, xenmca_coordinator: FlowBed
) -> None:
    bed = xenmca_coordinator
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await add_fault(bed, bed.xen_address, **rule)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info_of(caught.value)
    assert info is not None and info.reason == reason


@pytest.mark.xenmca(pcpus=1)
async def test_coordinator_fault_service_needs_the_operator(xenmca_coordinator: FlowBed) -> None:
    bed = xenmca_coordinator
    for metadata, code in (
        (bed.md(DOM0), grpc.StatusCode.PERMISSION_DENIED),
        ((), grpc.StatusCode.UNAUTHENTICATED),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await fault_client.list_faults(bed.xen_address, metadata)
        assert caught.value.code() == code
        assert error_info_of(caught.value) is not None


@pytest.mark.xenmca(pcpus=1)
async def test_delay_on_the_coordinator_uses_its_clock(xenmca_coordinator: FlowBed) -> None:
    bed = xenmca_coordinator
    assert bed.built.faults is not None
    assert bed.built.faults.clock is bed.coordinator.clock
    await add_fault(
        bed,
        bed.xen_address,
        method="HypervisorService.GetStateInfoSize",
        action=fault_pb2.FAULT_ACTION_DELAY,
        delay=duration_pb2.Duration(nanos=1_000_000),
        count=1,
    )
    reply = await bed.hv.GetStateInfoSize(
        hv_pb2.GetStateInfoSizeRequest(type=CMC), metadata=bed.dom0_md
    )
    assert reply.sal_status == 0
    assert len(bed.watch.matching("fault_fired", action="delay")) == 1


@pytest.mark.xenmca(pcpus=2, vcpu0_pcpu=0)
async def test_clear_repeated_after_its_reply_was_lost_is_answered_already_cleared(
    tmp_path, xenmca_coordinator: FlowBed
) -> None:
    """The coordinator acts on dom0's CLEAR, then the reply is lost: dom0's retry is answered
    0 with already_cleared (as a pCPU answers a repeated clear by id), not refused."""
    bed = xenmca_coordinator
    await add_fault(
        bed,
        bed.xen_address,
        method="HypervisorService.ClearStateInfo",
        action=DROP_REPLY,
        count=1,
    )
    dom0_events = EventLog("dom0")
    dom0_watch = EventWatch()
    dom0_events.subscribe(dom0_watch)
    store = await LogStore.open(tmp_path / "dom0.sqlite")
    logger = Dom0Logger(
        bed.xen_address, store, token=bed.tokens.token_for(DOM0), events=dom0_events
    )
    await logger.start()
    try:
        await bed.inject(1, count=2)
        await dom0_watch.wait_for("record_cleared", count=2, sal_status=0)
    finally:
        await logger.stop()
    first, second = dom0_watch.matching("record_cleared")
    assert first["already_cleared"] is True  # the retry after the lost reply
    assert second["already_cleared"] is False
    assert not bed.watch.matching("clear_refused")
    (repeated,) = bed.watch.matching("clear_repeated")
    assert (repeated["pcpu"], repeated["record_id"]) == (1, first["record_id"])
    state = await bed.pending(1)
    assert (state.pending, state.cleared) == (0, 2)  # each record cleared once
    assert logger.counters.records_logged == 2
    assert logger.counters.unreachable == 0
    await store.close()


@pytest.mark.xenmca(pcpus=2, vcpu0_pcpu=0)
async def test_ipi_faults_never_touch_local_calls_and_local_calls_are_made_once(
    xenmca_coordinator: FlowBed,
) -> None:
    """A local SAL call (vCPU0 runs on the record's pCPU) has no IPI to lose."""
    bed = xenmca_coordinator
    await add_fault(
        bed, bed.host.addresses[0], method="SalService.GetStateInfo", action=FAIL, count=1
    )
    await bed.inject(0, count=2)
    await bed.watch.wait_for("entry_queued", pcpu=0)
    dom0 = ScriptedDom0(bed)
    await dom0.next_interrupt()
    got = await dom0.get()
    assert (got.sal_status, got.by_ipi) == (0, False)
    assert [f.fired for f in bed.host.faults.list()] == [0]
    assert bed.coordinator.counters.retries == 0
    await dom0.clear(got.record.record_id)
    # vCPU0 moves: the same pCPU's next GET is an IPI, and the rule fires on it.
    await bed.hv.SetVcpuPlacement(hv_pb2.SetVcpuPlacementRequest(pcpu=1), metadata=bed.md(OPERATOR))
    await dom0.next_interrupt()
    got = await dom0.get()
    assert (got.sal_status, got.by_ipi) == (0, True)
    assert [f.fired for f in bed.host.faults.list()] == [1]
    assert bed.coordinator.counters.retries == 1
    (call,) = bed.watch.matching("get_ipi", pcpu=0)
    assert call["attempts"] == 2
    await dom0.detach()
