"""Fuzzing every HypervisorService RPC of a real coordinator over real pCPU servers.

Arbitrary record types (any int32), record ids, pCPU numbers, AttachDom0 instance names
and credentials. Every answer is a success or a canonical code with one ErrorInfo, an
oracle says which, and afterwards the coordinator's queues keep their invariants, every
pCPU conserves its records, and no record was cleared that dom0 had not read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import grpc
import pytest
from flow_harness import ScriptedDom0
from fuzz_strategies import (
    MAX_U32,
    PRINTABLE,
    RECORD_TYPES,
    SAL_CALL_ERROR,
    SAL_NO_INFORMATION,
    SAL_OK,
    Credential,
    caller,
    credentials,
    enum_values,
    mostly,
    record_ids,
    unknown_fields,
)
from hypothesis import strategies as st
from test_fuzz_support import (
    CALL_TIMEOUT,
    Answer,
    FuzzBed,
    LoopBed,
    answer,
    check_alive_and_conserved,
    check_conservation,
    check_coordinator,
    check_queues,
    check_refusal,
    describe_pcpus,
    fuzz_bed,
    is_oversized_refusal,
    run_examples,
    type_state,
)

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
from xenmca.layout.codec import decode_record
from xenmca.rpc.identity import DOM0, OPERATOR
from xenmca.xen.queues import State

PCPUS = (0, 1, 2)
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
record_types = mostly(st.sampled_from(RECORD_TYPES), enum_values)


@dataclass
class Dom0Model:
    """What dom0 (the test) read, and the clears the pCPUs made."""

    read: set[tuple[int, int]] = field(default_factory=set)

    def check_cleared(self, bed: FuzzBed) -> None:
        for event in bed.cleared_events():
            assert (event["pcpu"], event["record_id"]) in self.read, event


async def seed(bed: FuzzBed, per_type: int = 2) -> None:
    for pcpu in bed.pcpus:
        for record_type in RECORD_TYPES:
            await bed.flow.inject(pcpu, count=per_type, record_type=record_type)


async def wait_queued(bed: FuzzBed) -> None:
    """Until every pCPU with records pending has an entry for the type (or one in flight)."""
    coordinator = bed.flow.coordinator

    def queued() -> bool:
        for pcpu, server in bed.flow.host.servers.items():
            for record_type in RECORD_TYPES:
                if server.firmware.store.pending_count(record_type) and not coordinator.queues[
                    record_type
                ].has(pcpu):
                    return False
        return True

    await bed.flow.watch.until(queued)


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


# --- SetVcpuPlacement / DescribeHypervisor ---------------------------------------------


@dataclass(frozen=True)
class PlacementCall:
    pcpu: int
    credential: Credential


placement_calls = st.builds(
    PlacementCall,
    mostly(st.sampled_from(PCPUS), st.one_of(st.integers(0, 8), st.integers(0, MAX_U32))),
    caller(OPERATOR),
)


async def set_vcpu_placement(bed: FuzzBed, drawn: PlacementCall) -> None:
    coordinator = bed.flow.coordinator
    before = coordinator.vcpu0_pcpu
    got = await answer(
        bed.flow.hv.SetVcpuPlacement(
            hv_pb2.SetVcpuPlacementRequest(pcpu=drawn.pcpu),
            metadata=drawn.credential.metadata(bed.flow.tokens),
            timeout=CALL_TIMEOUT,
        )
    )
    if drawn.credential.identity is None:
        assert got.code == UNAUTHENTICATED, got
    elif drawn.credential.identity != OPERATOR:
        assert got.code == PERMISSION_DENIED, got
    elif drawn.pcpu not in PCPUS:
        assert got.refused(INVALID_ARGUMENT, "UNKNOWN_PCPU"), got
    else:
        assert got.ok and got.reply.previous_pcpu == before, got
        assert coordinator.vcpu0_pcpu == drawn.pcpu
        return
    assert coordinator.vcpu0_pcpu == before  # a refusal moves nothing


def test_fuzz_hv_set_vcpu_placement() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        run_examples(loop, 80, placement_calls, set_vcpu_placement)


async def describe_hypervisor(bed: FuzzBed, drawn: tuple[Credential, bytes]) -> None:
    credential, extra = drawn
    call = bed.flow.channel.unary_unary(
        "/xenmca.hypervisor.v1.HypervisorService/DescribeHypervisor",
        request_serializer=None,
        response_deserializer=hv_pb2.DescribeHypervisorResponse.FromString,
    )
    got = await answer(
        call(extra, metadata=credential.metadata(bed.flow.tokens), timeout=CALL_TIMEOUT)
    )
    if credential.identity is None:
        assert got.code == UNAUTHENTICATED, got
    else:
        assert got.ok, got
        assert sorted(p.pcpu for p in got.reply.pcpus) == list(PCPUS)
        assert got.reply.vcpu0_pcpu == bed.flow.coordinator.vcpu0_pcpu


def test_fuzz_hv_describe_hypervisor() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        run_examples(loop, 40, st.tuples(credentials, unknown_fields), describe_hypervisor)


# --- AttachDom0 ------------------------------------------------------------------------


@dataclass(frozen=True)
class AttachCall:
    instance: str
    credential: Credential
    read: bool
    """Read one virtual interrupt (with a short timeout) before cancelling."""


instances = st.one_of(
    st.text(max_size=40),
    st.text(PRINTABLE, min_size=200, max_size=400),
    st.sampled_from(["", " ", "\x00", "dom0\nforged-event", "é" * 1000, "x" * 100_000]),
)
attach_calls = st.builds(AttachCall, instances, caller(DOM0), st.booleans())


async def attach_dom0(bed: FuzzBed, drawn: AttachCall) -> None:
    coordinator = bed.flow.coordinator
    if not any(q.in_flight or len(q) for q in coordinator.queues.values()):
        await seed(bed, per_type=1)
        await wait_queued(bed)
    call = bed.flow.hv.AttachDom0(
        hv_pb2.AttachDom0Request(instance=drawn.instance),
        metadata=drawn.credential.metadata(bed.flow.tokens),
    )
    refusal = None
    if drawn.credential.identity is None:
        refusal = UNAUTHENTICATED
    elif drawn.credential.identity != DOM0:
        refusal = PERMISSION_DENIED
    try:
        if drawn.read or refusal is not None:
            async with asyncio.timeout(0.2 if refusal is None else CALL_TIMEOUT):
                interrupt = await call.read()
            assert refusal is None, f"{drawn.credential} was not refused"
            assert interrupt is not grpc.aio.EOF
            assert interrupt.type in coordinator.config.injected_types
            assert interrupt.injection_id > 0
    except grpc.aio.AioRpcError as error:
        assert error.code() == refusal, error
        check_refusal(error)
    except TimeoutError:
        assert refusal is None
    finally:
        call.cancel()
    # The coordinator notices the cancelled stream: dom0 detached, its entry taken back.
    await bed.flow.watch.until(lambda: coordinator.session is None)
    await check_coordinator(bed)
    await check_conservation(bed)


def test_fuzz_hv_attach_dom0() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        loop.run(seed(loop.bed, per_type=1))
        loop.run(wait_queued(loop.bed))
        run_examples(loop, 80, attach_calls, attach_dom0)
        assert not loop.bed.cleared_events()


async def test_oversized_attach_is_refused_by_grpc_and_the_coordinator_lives_on() -> None:
    async with fuzz_bed(pcpus=1) as bed:
        unlimited = grpc.aio.insecure_channel(
            bed.flow.xen_address, options=[("grpc.max_send_message_length", -1)]
        )
        try:
            call = hv_grpc.HypervisorServiceStub(unlimited).AttachDom0(
                hv_pb2.AttachDom0Request(instance="x" * (5 * 1024 * 1024)),
                metadata=bed.flow.dom0_md,
                timeout=CALL_TIMEOUT,
            )
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call.read()
        finally:
            await unlimited.close()
        assert is_oversized_refusal(raised.value), raised.value
        assert bed.flow.coordinator.session is None
        await check_alive_and_conserved(bed)


# --- bytes that are not a protobuf message at all --------------------------------------

GARBAGE = (b"\xff\xff\xff", b"\x08", b"\x0a\x05ab", b"\x12\x80\x80\x80\x80\x10")
"""A bad tag, a truncated varint, a truncated length-delimited field, a 4 GiB length."""


async def send_garbage(bed: FuzzBed) -> list[tuple[str, bytes, grpc.aio.AioRpcError]]:
    """Every method of both services, with every GARBAGE request; the refusals."""
    from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv
    from xenmca.sal.v1 import sal_service_pb2 as sal

    targets = [
        (hv.DESCRIPTOR.services_by_name["HypervisorService"], bed.flow.channel, DOM0),
        (sal.DESCRIPTOR.services_by_name["SalService"], bed.flow.sal_channels[0], OPERATOR),
    ]
    refusals = []
    for service, channel, identity in targets:
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            for garbage in GARBAGE:
                if method.server_streaming:
                    call = channel.unary_stream(path)(garbage, metadata=bed.flow.md(identity))
                    read = call.read()
                else:
                    read = channel.unary_unary(path)(garbage, metadata=bed.flow.md(identity))
                try:
                    async with asyncio.timeout(CALL_TIMEOUT):
                        await read
                except grpc.aio.AioRpcError as error:
                    refusals.append((path, garbage, error))
                else:
                    raise AssertionError(f"{path} accepted {garbage!r}")
    return refusals


async def test_garbage_request_bytes_are_refused_and_the_servers_live_on() -> None:
    async with fuzz_bed(pcpus=1) as bed:
        await seed(bed, per_type=1)
        bed.flow.sal(0)  # open the pCPU's channel
        refusals = await send_garbage(bed)
        from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv
        from xenmca.sal.v1 import sal_service_pb2 as sal

        methods = sum(
            len(module.DESCRIPTOR.services_by_name[name].methods)
            for module, name in ((hv, "HypervisorService"), (sal, "SalService"))
        )
        assert len(refusals) == len(GARBAGE) * methods
        for path, garbage, error in refusals:
            # gRPC's own deserializer refuses before any servicer runs.
            assert error.code() in (grpc.StatusCode.UNKNOWN, INVALID_ARGUMENT), (path, garbage)
        await check_alive_and_conserved(bed)


async def test_garbage_request_bytes_get_invalid_argument_with_an_error_info() -> None:
    async with fuzz_bed(pcpus=1) as bed:
        bed.flow.sal(0)
        for path, garbage, error in await send_garbage(bed):
            assert error.code() == INVALID_ARGUMENT, (path, garbage, error.details())
            check_refusal(error)
