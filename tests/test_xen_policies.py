"""Each coordinator policy does what its source did, with real servers on port 0.

xen-ia64-2006 and xen-ia64-2009 replay fw_emul.c sal_emulator and mca.c
ia64_log_queue (758fbf680d, cb5985adb8); xenmca keeps its invariants on
extended and on plain SAL.
"""

from __future__ import annotations

import pytest
from flow_harness import CMC, FlowBed, ScriptedDom0, flow_bed

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.layout.codec import decode_record
from xenmca.record.v1 import record_pb2
from xenmca.rpc.fault_rules import FaultSpec
from xenmca.rpc.identity import OPERATOR
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.xen.policy import PolicySpec

MCA = record_pb2.RECORD_TYPE_MCA
SAL_OK, SAL_CALL_ERROR, SAL_NO_INFORMATION = 0, -3, -5
SHIPPED_2006 = PolicySpec("xen-ia64-2006")
SHIPPED_2009 = PolicySpec("xen-ia64-2009")


async def pending_ids(bed: FlowBed, pcpu: int, record_type: int = CMC) -> list[int]:
    state = await bed.sal(pcpu).DescribePcpu(
        sal_pb2.DescribePcpuRequest(pending_ids_limit=100), metadata=bed.md(OPERATOR)
    )
    return list(next(t for t in state.types if t.type == record_type).pending_record_ids)


async def describe(bed: FlowBed) -> hv_pb2.DescribeHypervisorResponse:
    return await bed.hv.DescribeHypervisor(
        hv_pb2.DescribeHypervisorRequest(), metadata=bed.md(OPERATOR)
    )


async def queued(bed: FlowBed, record_type: int = CMC) -> list[tuple[int, int]]:
    """(pCPU, SAL type) of every entry of a queue, in flight first, then head to tail."""
    state = await describe(bed)
    queue = next(q for q in state.queues if q.type == record_type)
    entries = ([queue.in_flight] if queue.HasField("in_flight") else []) + list(queue.entries)
    return [(e.pcpu, e.sal_type) for e in entries]


async def inject_and_wait(bed: FlowBed, pcpu: int, count: int = 1, record_type: int = CMC) -> None:
    before = len(bed.watch.matching("interrupt_received", pcpu=pcpu))
    await bed.inject(pcpu, count=count, record_type=record_type)
    await bed.watch.wait_for("interrupt_received", count=before + count, pcpu=pcpu)


@pytest.mark.parametrize("sal_mode", ["extended", "plain"])
async def test_xenmca_clears_the_record_read_and_a_retried_clear_clears_nothing(sal_mode) -> None:
    async with flow_bed(pcpus=2, sal_mode=sal_mode, vcpu0_pcpu=0) as bed:
        await inject_and_wait(bed, 1, count=2)
        await inject_and_wait(bed, 0, count=1)
        dom0 = ScriptedDom0(bed)
        await dom0.next_interrupt()
        got = await dom0.get()
        assert got.sal_status == SAL_OK
        first = (got.record.pcpu, got.record.record_id)
        cleared = await dom0.clear(got.record.record_id)
        assert cleared.sal_status == SAL_OK
        # dom0 retries its CLEAR (its reply was lost): answered "already cleared", and
        # nothing else is cleared.
        again = await dom0.clear(got.record.record_id)
        assert (again.sal_status, again.already_cleared) == (SAL_OK, True)
        assert (again.cleared_record_id, again.pcpu) == (got.record.record_id, got.record.pcpu)
        # A record id nobody read is still refused.
        assert (await dom0.clear(got.record.record_id + 100)).sal_status == SAL_NO_INFORMATION
        remaining = {p: await pending_ids(bed, p) for p in (0, 1)}
        assert sum(len(ids) for ids in remaining.values()) == 2
        assert first[1] not in remaining[first[0]]
        await dom0.detach()


@pytest.mark.xenmca(pcpus=2, sal_mode="plain", vcpu0_pcpu=0)
async def test_plain_sal_compare_and_clear_survives_a_lost_clear_reply(
    xenmca_coordinator: FlowBed,
) -> None:
    bed = xenmca_coordinator
    bed.host.faults.add(FaultSpec("SalService.ClearStateInfo", "drop-reply", pcpu=1, count=1))
    await inject_and_wait(bed, 1, count=3)
    dom0 = ScriptedDom0(bed)
    await dom0.next_interrupt()
    got = await dom0.get()
    cleared = await dom0.clear(got.record.record_id)
    assert cleared.sal_status == SAL_OK
    # The CLEAR landed, its reply was lost, the retry compared ids and cleared nothing.
    assert await pending_ids(bed, 1) == [got.record.record_id + 1, got.record.record_id + 2]
    assert bed.coordinator.counters.retries == 1
    await dom0.detach()


@pytest.mark.xenmca(pcpus=2, sal_mode="plain", vcpu0_pcpu=0, policy="xen-ia64-2006")
async def test_2006_clear_pops_the_queue_head_whatever_dom0_read(
    xenmca_coordinator: FlowBed,
) -> None:
    """fw_emul.c SAL_CLEAR_STATE_INFO: list_entry(sal_queue[in1].next), then xfree(e)."""
    bed = xenmca_coordinator
    await inject_and_wait(bed, 0)
    await inject_and_wait(bed, 1)
    dom0 = ScriptedDom0(bed)
    got = await dom0.get()
    assert (got.sal_status, got.record.pcpu) == (SAL_OK, 0)
    assert (await dom0.clear(got.record.record_id)).sal_status == SAL_OK
    # A second CLEAR for the same record (a retry) clears pCPU 1's record, never read.
    second = await dom0.clear(got.record.record_id)
    assert (second.sal_status, second.pcpu) == (SAL_OK, 1)
    assert await pending_ids(bed, 1) == []
    assert not bed.watch.matching("record_copied", pcpu=1)
    await dom0.detach()


@pytest.mark.xenmca(pcpus=2, sal_mode="plain", policy="xen-ia64-2006")
async def test_2006_one_entry_per_interrupt_and_mca_on_the_cmc_queue(
    xenmca_coordinator: FlowBed,
) -> None:
    bed = xenmca_coordinator
    await inject_and_wait(bed, 1, count=2)
    await inject_and_wait(bed, 1, record_type=MCA)
    assert await queued(bed) == [(1, CMC), (1, CMC), (1, MCA)]
    assert await queued(bed, MCA) == []


@pytest.mark.xenmca(pcpus=2, sal_mode="plain", vcpu0_pcpu=0, policy="xen-ia64-2009")
async def test_2009_slot_per_pcpu_drops_the_mca_behind_a_cmc(xenmca_coordinator: FlowBed) -> None:
    """cb5985adb8: the MCA's slot is sal_entry[cpu][CMC], already listed: skipped."""
    bed = xenmca_coordinator
    await inject_and_wait(bed, 1)
    await inject_and_wait(bed, 1, record_type=MCA)
    assert await queued(bed) == [(1, CMC)]
    dom0 = ScriptedDom0(bed)
    got = await dom0.get()
    assert got.record.type == CMC
    await dom0.clear(got.record.record_id)
    # Re-added at the head; the next GET finds no CMC record and frees it.
    assert (await dom0.get()).sal_status == SAL_NO_INFORMATION
    assert await queued(bed) == []
    mca = await pending_ids(bed, 1, MCA)
    assert len(mca) == 1  # never fetched, and nothing left to fetch it
    await dom0.detach()


@pytest.mark.xenmca(pcpus=1, sal_mode="plain", policy="xen-ia64-2009")
async def test_2009_mca_first_is_read_through_cmc_as_corrected(xenmca_coordinator: FlowBed) -> None:
    """fw_emul.c get_state_info_on: arg->corrected forces the severity to corrected."""
    bed = xenmca_coordinator
    await bed.sal(0).InjectError(
        sal_pb2.InjectErrorRequest(type=MCA, severity=record_pb2.SEVERITY_FATAL, count=1),
        metadata=bed.md(OPERATOR),
    )
    await bed.watch.wait_for("interrupt_received", pcpu=0)
    dom0 = ScriptedDom0(bed)
    got = await dom0.get(CMC)
    assert got.record.type == MCA
    assert got.record.severity == record_pb2.SEVERITY_CORRECTED
    assert decode_record(got.record.raw).severity == 2  # sal_log_severity_corrected
    await dom0.detach()


@pytest.mark.xenmca(pcpus=2, sal_mode="plain", vcpu0_pcpu=0, policy="xen-ia64-2009")
async def test_2009_busy_pcpu_stays_at_the_head(xenmca_coordinator: FlowBed) -> None:
    """cb5985adb8: list_add (head) after every CLEAR with r9 >= 0."""
    bed = xenmca_coordinator
    await inject_and_wait(bed, 0, count=4)
    await inject_and_wait(bed, 1)
    dom0 = ScriptedDom0(bed)
    order: list[int | None] = []
    while len([p for p in order if p is not None]) < 5:
        got = await dom0.get()
        if got.sal_status != SAL_OK:
            order.append(None)  # the exhausted slot, freed by a GET that found nothing
            continue
        order.append(got.record.pcpu)
        await dom0.clear(got.record.record_id)
    assert order == [0, 0, 0, 0, None, 1]
    await dom0.detach()


@pytest.mark.xenmca(pcpus=2, sal_mode="plain", vcpu0_pcpu=0)
async def test_xenmca_round_robin_under_the_same_load(xenmca_coordinator: FlowBed) -> None:
    bed = xenmca_coordinator
    await inject_and_wait(bed, 0, count=4)
    await inject_and_wait(bed, 1)
    dom0 = ScriptedDom0(bed)
    order = []
    for _ in range(5):
        await dom0.next_interrupt()
        got = await dom0.get()
        order.append(got.record.pcpu)
        await dom0.clear(got.record.record_id)
    assert order.index(1) <= 1
    await dom0.detach()


@pytest.mark.parametrize("policy", [SHIPPED_2006, SHIPPED_2009], ids=lambda p: p.name)
async def test_shipped_failed_get_drops_the_entry_and_strands_the_record(policy) -> None:
    async with flow_bed(pcpus=2, sal_mode="plain", vcpu0_pcpu=0, policy=policy) as bed:
        bed.host.faults.add(FaultSpec("SalService.GetStateInfo", "fail", pcpu=1, count=1))
        await inject_and_wait(bed, 1)
        dom0 = ScriptedDom0(bed)
        got = await dom0.get()
        assert got.sal_status == SAL_NO_INFORMATION
        assert await queued(bed) == []
        assert len(await pending_ids(bed, 1)) == 1  # in firmware, with no entry
        await dom0.detach()


async def test_xenmca_failed_get_keeps_the_entry() -> None:
    no_retry = PolicySpec("xenmca", {"ipi": "single"})
    async with flow_bed(pcpus=2, sal_mode="plain", vcpu0_pcpu=0, policy=no_retry) as bed:
        bed.host.faults.add(FaultSpec("SalService.GetStateInfo", "fail", pcpu=1, count=1))
        await inject_and_wait(bed, 1)
        dom0 = ScriptedDom0(bed)
        await dom0.next_interrupt()
        assert (await dom0.get()).sal_status == SAL_CALL_ERROR
        assert await queued(bed) == [(1, CMC)]
        await dom0.next_interrupt()  # injected again once the pCPU's hold ends
        got = await dom0.get()
        assert got.sal_status == SAL_OK
        await dom0.detach()


@pytest.mark.xenmca(pcpus=2, sal_mode="plain", vcpu0_pcpu=0, policy="xen-ia64-2009")
async def test_2009_failed_clear_reads_the_same_record_again(xenmca_coordinator: FlowBed) -> None:
    bed = xenmca_coordinator
    bed.host.faults.add(FaultSpec("SalService.ClearStateInfo", "fail", pcpu=1, count=1))
    await inject_and_wait(bed, 1)
    dom0 = ScriptedDom0(bed)
    first = await dom0.get()
    assert (await dom0.clear(first.record.record_id)).sal_status == SAL_NO_INFORMATION
    second = await dom0.get()
    assert second.record.record_id == first.record.record_id  # delivered twice
    await dom0.detach()


@pytest.mark.xenmca(pcpus=3, sal_mode="plain", policy="xen-ia64-2009")
async def test_virq_bit_coalesces_interrupts_until_dom0_runs(xenmca_coordinator: FlowBed) -> None:
    bed = xenmca_coordinator
    dom0 = ScriptedDom0(bed)
    await bed.watch.wait_for("dom0_attached")
    for pcpu in (0, 1, 2):
        await inject_and_wait(bed, pcpu)
    first = await dom0.next_interrupt()
    assert first.type == CMC
    assert len(bed.watch.matching("injected")) == 1
    assert bed.coordinator.counters.virqs_coalesced == 2
    got = await dom0.get()
    await dom0.clear(got.record.record_id)
    # Nothing re-raises the VIRQ: two records wait with entries and no interrupt
    # (pCPU 0's slot is back at the head, empty, until a GET frees it).
    assert len(bed.watch.matching("injected")) == 1
    assert await queued(bed) == [(0, CMC), (1, CMC), (2, CMC)]
    assert [len(await pending_ids(bed, p)) for p in (0, 1, 2)] == [0, 1, 1]
    state = await describe(bed)
    assert not next(q for q in state.queues if q.type == CMC).virq_pending
    await dom0.detach()


async def test_policy_is_described() -> None:
    spec = PolicySpec("xenmca", {"after_clear": "head"})
    async with flow_bed(pcpus=1, sal_mode="plain", policy=spec) as bed:
        state = await describe(bed)
        assert state.policy.name == "xenmca"
        assert state.policy.label == "xenmca+after_clear=head"
        assert state.policy.choices["after_clear"] == "head"
        assert state.policy.choices["clear_target"] == "read-record"
        assert state.policy.sal_mode == "plain"


def modes(state: hv_pb2.DescribeHypervisorResponse) -> dict[int, int]:
    return {line.pcpu: line.mode for line in state.throttle if line.type == CMC}


POLLING, INTERRUPT = hv_pb2.THROTTLE_MODE_POLLING, hv_pb2.THROTTLE_MODE_INTERRUPT


@pytest.mark.parametrize(
    ("policy", "throttled"),
    [(PolicySpec("xenmca"), {0}), (SHIPPED_2009, {0, 1, 2})],
    ids=["per-line", "global"],
)
async def test_storm_scope(policy, throttled) -> None:
    """mca.c: one static cmc_history for all CPUs; CMC_DISABLE_SOFTIRQ on cpu_online_map."""
    async with flow_bed(pcpus=3, sal_mode="plain", policy=policy) as bed:
        await inject_and_wait(bed, 0, count=6)
        await bed.watch.wait_for("throttle_transition", new="polling", count=len(throttled))
        state = await describe(bed)
        assert {p for p, mode in modes(state).items() if mode == POLLING} == throttled
        if len(throttled) > 1:
            why = bed.watch.matching("throttle_transition", pcpu=2, new="polling")[0]["why"]
            assert "pCPU 0" in why


@pytest.mark.parametrize(("count", "back"), [("new-records", True), ("pending-records", False)])
async def test_poll_count(count, back) -> None:
    """A record nobody clears keeps a pending-records line polling; new-records returns."""
    policy = PolicySpec("xenmca", {"poll_count": count})
    async with flow_bed(pcpus=2, sal_mode="plain", policy=policy) as bed:
        await inject_and_wait(bed, 0, count=6)  # no dom0: the records stay pending
        if back:
            await bed.watch.wait_for("throttle_transition", pcpu=0, new="interrupt", within=10)
            assert [e["found"] for e in bed.watch.matching("poll", pcpu=0)] == [0]
        else:
            await bed.watch.wait_for("poll", pcpu=0, count=4, within=10)
            assert not bed.watch.matching("throttle_transition", pcpu=0, new="interrupt")
            assert all(e["found"] == 1 for e in bed.watch.matching("poll", pcpu=0))
