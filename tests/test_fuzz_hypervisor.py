"""Fuzzing HypervisorService's trapped-record RPCs (GetStateInfo, GetStateInfoSize,
ClearStateInfo) of a real coordinator over real pCPU servers.

Arbitrary record types (any int32), record ids and credentials. Every answer is a success
or a canonical code with one ErrorInfo, an oracle says which, and afterwards the
coordinator's queues keep their invariants, every pCPU conserves its records, and no record
was cleared that dom0 had not read. The other RPCs are fuzzed in
test_fuzz_hypervisor_placement.py and test_fuzz_hypervisor_attach.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from flow_harness import ScriptedDom0
from fuzz_hypervisor_helpers import INVALID_ARGUMENT, PCPUS, UNAUTHENTICATED, seed, wait_queued
from fuzz_strategies import (
    RECORD_TYPES,
    SAL_CALL_ERROR,
    SAL_NO_INFORMATION,
    SAL_OK,
    Credential,
    caller,
    enum_values,
    mostly,
    record_ids,
)
from hypothesis import strategies as st
from test_fuzz_support import (
    CALL_TIMEOUT,
    Answer,
    FuzzBed,
    LoopBed,
    answer,
    check_conservation,
    check_queues,
    describe_pcpus,
    run_examples,
    type_state,
)

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.layout.codec import decode_record
from xenmca.rpc.identity import DOM0
from xenmca.xen.queues import State

record_types = mostly(st.sampled_from(RECORD_TYPES), enum_values)


@dataclass
class Dom0Model:
    """What dom0 (the test) read, and the clears the pCPUs made."""

    read: set[tuple[int, int]] = field(default_factory=set)

    def check_cleared(self, bed: FuzzBed) -> None:
        for event in bed.cleared_events():
            assert (event["pcpu"], event["record_id"]) in self.read, event


def trapped_refusal(record_type: int, credential: Credential) -> tuple[grpc.StatusCode, str] | None:
    """The refusal of a trapped SAL call, or None when it must succeed (with -5 for a
    caller that is not dom0): authentication comes first, then the argument."""
    if credential.identity is None:
        return UNAUTHENTICATED, ""
    if record_type not in RECORD_TYPES:
        return INVALID_ARGUMENT, "INVALID_RECORD_TYPE"
    return None


def assert_refusal(got: Answer, expected: tuple[grpc.StatusCode, str]) -> None:
    code, reason = expected
    assert got.code == code, got
    if reason:
        assert got.reason == reason, got


@dataclass(frozen=True)
class TrappedCall:
    record_type: int
    credential: Credential


trapped_calls = st.builds(TrappedCall, record_types, caller(DOM0))


# --- GetStateInfo ----------------------------------------------------------------------


async def get_state_info(bed: FuzzBed, drawn: TrappedCall, model: Dom0Model) -> None:
    coordinator = bed.flow.coordinator
    got = await answer(
        bed.flow.hv.GetStateInfo(
            hv_pb2.GetStateInfoRequest(type=drawn.record_type),  # type: ignore[arg-type]
            metadata=drawn.credential.metadata(bed.flow.tokens),
            timeout=CALL_TIMEOUT,
        )
    )
    expected = trapped_refusal(drawn.record_type, drawn.credential)
    if expected is not None:
        assert_refusal(got, expected)
    elif drawn.credential.identity != DOM0:
        assert got.ok and got.reply.sal_status == SAL_NO_INFORMATION, got
        assert not got.reply.HasField("record")
    else:
        assert got.ok, got
        reply = got.reply
        assert reply.sal_status in (SAL_OK, SAL_NO_INFORMATION, SAL_CALL_ERROR), reply
        if reply.sal_status == SAL_OK:
            record = reply.record
            in_flight = coordinator.queues[drawn.record_type].in_flight
            assert in_flight is not None and in_flight.state is State.READ
            assert (in_flight.pcpu, in_flight.record_id) == (record.pcpu, record.record_id)
            assert record.type == drawn.record_type
            assert reply.by_ipi == (record.pcpu != coordinator.vcpu0_pcpu)
            assert decode_record(record.raw).record_id == record.record_id
            model.read.add((record.pcpu, record.record_id))
    check_queues(bed)
    model.check_cleared(bed)
    await check_conservation(bed)


def test_fuzz_hv_get_state_info() -> None:
    model = Dom0Model()
    with LoopBed(pcpus=len(PCPUS)) as loop:
        loop.run(seed(loop.bed))
        loop.run(wait_queued(loop.bed))
        dom0 = loop.run(_attach(loop.bed))
        run_examples(loop, 100, trapped_calls, lambda bed, drawn: get_state_info(bed, drawn, model))
        model.check_cleared(loop.bed)
        assert not loop.bed.cleared_events()  # GET never clears
        loop.run(dom0.detach())


async def _attach(bed: FuzzBed) -> ScriptedDom0:
    dom0 = ScriptedDom0(bed.flow)
    await dom0.next_interrupt()
    return dom0


# --- GetStateInfoSize ------------------------------------------------------------------


async def get_state_info_size(bed: FuzzBed, drawn: TrappedCall) -> None:
    got = await answer(
        bed.flow.hv.GetStateInfoSize(
            hv_pb2.GetStateInfoSizeRequest(type=drawn.record_type),  # type: ignore[arg-type]
            metadata=drawn.credential.metadata(bed.flow.tokens),
            timeout=CALL_TIMEOUT,
        )
    )
    expected = trapped_refusal(drawn.record_type, drawn.credential)
    if expected is not None:
        assert_refusal(got, expected)
    elif drawn.credential.identity != DOM0:
        assert got.ok and got.reply.sal_status == SAL_NO_INFORMATION, got
    else:
        assert got.ok and got.reply.sal_status == SAL_OK, got
        # One record's size (the largest of the pCPUs'), never size x pCPUs.
        described = await describe_pcpus(bed)
        largest = max(type_state(d, drawn.record_type).max_record_size for d in described.values())
        assert got.reply.size == largest > 0


def test_fuzz_hv_get_state_info_size() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        run_examples(loop, 60, trapped_calls, get_state_info_size)


# --- ClearStateInfo --------------------------------------------------------------------


@dataclass(frozen=True)
class ClearCall:
    record_type: int
    read_first: bool
    record_id: int | str | None
    """None: no record_id; "read": the id dom0 read; else that id."""
    credential: Credential


clear_calls = st.builds(
    ClearCall,
    record_types,
    st.booleans(),
    st.one_of(st.none(), st.just("read"), record_ids),
    caller(DOM0),
)


async def clear_state_info(bed: FuzzBed, drawn: ClearCall, model: Dom0Model) -> None:
    flow = bed.flow
    coordinator = flow.coordinator
    valid_type = drawn.record_type in RECORD_TYPES
    if valid_type:
        store_total = sum(
            s.firmware.store.pending_count(drawn.record_type) for s in flow.host.servers.values()
        )
        if store_total < 2:
            for pcpu in bed.pcpus:
                await flow.inject(pcpu, count=2, record_type=drawn.record_type)
            await wait_queued(bed)
        if drawn.read_first:
            await get_state_info(
                bed, TrappedCall(drawn.record_type, Credential("token", DOM0)), model
            )
    queue = coordinator.queues[drawn.record_type] if valid_type else None
    in_flight = queue.in_flight if queue is not None else None
    read_id = in_flight.record_id if in_flight is not None and in_flight.state is State.READ else 0
    request = hv_pb2.ClearStateInfoRequest(type=drawn.record_type)  # type: ignore[arg-type]
    if drawn.record_id == "read":
        request.record_id = read_id
    elif drawn.record_id is not None:
        request.record_id = int(drawn.record_id)
    cleared_before = len(bed.cleared_events())
    got = await answer(
        flow.hv.ClearStateInfo(
            request, metadata=drawn.credential.metadata(flow.tokens), timeout=CALL_TIMEOUT
        )
    )
    expected = trapped_refusal(drawn.record_type, drawn.credential)
    new_clears = bed.cleared_events()[cleared_before:]
    if expected is not None:
        assert_refusal(got, expected)
        assert not new_clears
    elif drawn.credential.identity != DOM0:
        assert got.ok and got.reply.sal_status == SAL_NO_INFORMATION, got
        assert not new_clears
    else:
        assert got.ok, got
        reply = got.reply
        asked_read = read_id and (not request.HasField("record_id") or request.record_id == read_id)
        if asked_read:
            assert in_flight is not None
            assert reply.sal_status in (SAL_OK, SAL_CALL_ERROR), reply
            if reply.sal_status == SAL_OK:
                assert (reply.pcpu, reply.cleared_record_id) == (in_flight.pcpu, read_id)
                assert reply.by_ipi == (reply.pcpu != coordinator.vcpu0_pcpu)
                # (twice only if a retried IPI lost its reply: the second is already_cleared)
                assert {(e["pcpu"], e["record_id"]) for e in new_clears} == {
                    (in_flight.pcpu, read_id)
                }
        else:  # nothing read, or another record named: nothing is cleared
            assert reply.sal_status == SAL_NO_INFORMATION, (reply, read_id)
            assert not new_clears
    check_queues(bed)
    model.check_cleared(bed)
    await check_conservation(bed)


def test_fuzz_hv_clear_state_info() -> None:
    model = Dom0Model()
    with LoopBed(pcpus=len(PCPUS)) as loop:
        loop.run(seed(loop.bed))
        loop.run(wait_queued(loop.bed))
        dom0 = loop.run(_attach(loop.bed))
        run_examples(loop, 150, clear_calls, lambda bed, drawn: clear_state_info(bed, drawn, model))
        assert loop.bed.cleared_events()  # the success path was taken
        model.check_cleared(loop.bed)
        loop.run(dom0.detach())
