"""Fuzzing every SalService RPC of real pCPU servers (with the coordinator connected).

Each RPC gets arbitrary field values (open-enum numbers out of range, uint32/uint64
extremes, NaN/inf rates, broken sections) and arbitrary credentials. The only acceptable
answers are a success or a canonical code with one ErrorInfo; for every example an oracle
says which one, and afterwards every pCPU still answers and conserves its records.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
import pytest
from fuzz_strategies import (
    MAX_U32,
    RECORD_TYPES,
    SAL_NO_INFORMATION,
    SAL_OK,
    SEVERITIES,
    Credential,
    FuzzSection,
    caller,
    counts,
    credentials,
    enum_values,
    mostly,
    rates,
    record_ids,
    section_lists,
    unknown_fields,
    valid_rate,
)
from hypothesis import strategies as st
from test_fuzz_support import (
    CALL_TIMEOUT,
    FuzzBed,
    LoopBed,
    answer,
    check_alive_and_conserved,
    check_conservation,
    check_refusal,
    describe_pcpus,
    end_paced_injections,
    fuzz_bed,
    is_oversized_refusal,
    run_examples,
    type_state,
)

from xenmca.layout.codec import decode_record
from xenmca.pcpu import records
from xenmca.pcpu.firmware import MAX_PACED_INJECTIONS
from xenmca.record.v1 import record_pb2
from xenmca.rpc.identity import OPERATOR, XEN
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

PCPUS = (0, 1)
pcpus = st.sampled_from(PCPUS)
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
# Who may call what on a pCPU (DESIGN 3, issue 6 item 4); the other RPCs are open.
REQUIRED_IDENTITY = {
    "InjectError": OPERATOR,
    "ListInjections": OPERATOR,
    "CancelInjection": OPERATOR,
    "GetStateInfo": XEN,
    "ClearStateInfo": XEN,
    "SetInterruptMask": XEN,
    "WatchInterrupts": XEN,
}
MAX_COUNT = 1_000_000
MIN_INJECT_RATE = 0.001
"""A paced injection's slowest rate (issue 12 item 4): one record per 1000 s."""
DAY = 86_400 * (1 + 1e-9)
"""The longest a paced injection may last (count / rate), with the pCPU's float slack."""


def auth_refusal(method: str, credential: Credential) -> grpc.StatusCode | None:
    """The code a pCPU must refuse this caller with, or None when the caller may call."""
    required = REQUIRED_IDENTITY.get(method)
    if required is None:
        return None
    if credential.identity is None:
        return grpc.StatusCode.UNAUTHENTICATED
    if credential.identity != required:
        return grpc.StatusCode.PERMISSION_DENIED
    return None


def stub(bed: FuzzBed, pcpu: int) -> sal_grpc.SalServiceStub:
    return bed.flow.sal(pcpu)


async def seed(bed: FuzzBed, per_type: int = 3) -> None:
    """A few records of every type on every pCPU (fewer than a storm's five)."""
    for pcpu in bed.pcpus:
        for record_type in RECORD_TYPES:
            await bed.flow.inject(pcpu, count=per_type, record_type=record_type)


# --- GetStateInfo / GetStateInfoSize ---------------------------------------------------


@dataclass(frozen=True)
class TypedCall:
    pcpu: int
    record_type: int
    credential: Credential


record_types = mostly(st.sampled_from(RECORD_TYPES), enum_values)
typed_calls = st.builds(TypedCall, pcpus, record_types, caller(XEN))
open_typed_calls = st.builds(TypedCall, pcpus, record_types, credentials)


async def get_state_info(bed: FuzzBed, drawn: TypedCall) -> None:
    got = await answer(
        stub(bed, drawn.pcpu).GetStateInfo(
            sal_pb2.GetStateInfoRequest(type=drawn.record_type),  # type: ignore[arg-type]
            metadata=drawn.credential.metadata(bed.flow.tokens),
            timeout=CALL_TIMEOUT,
        )
    )
    refusal = auth_refusal("GetStateInfo", drawn.credential)
    if refusal is not None:
        assert got.code == refusal, got
    elif drawn.record_type not in RECORD_TYPES:
        assert got.refused(INVALID_ARGUMENT, "INVALID_RECORD_TYPE"), got
    else:
        assert got.ok, got
        state = type_state((await describe_pcpus(bed))[drawn.pcpu], drawn.record_type)
        if state.pending == 0:
            assert got.reply.sal_status == SAL_NO_INFORMATION
            assert not got.reply.HasField("record")
        else:
            record = got.reply.record
            assert got.reply.sal_status == SAL_OK
            assert (record.pcpu, record.type) == (drawn.pcpu, drawn.record_type)
            assert record.record_id == state.oldest_record_id
            assert decode_record(record.raw).record_id == record.record_id
    await check_conservation(bed)


def test_fuzz_sal_get_state_info() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        loop.run(seed(loop.bed))
        run_examples(loop, 100, typed_calls, get_state_info)


async def get_state_info_size(bed: FuzzBed, drawn: TypedCall) -> None:
    got = await answer(
        stub(bed, drawn.pcpu).GetStateInfoSize(
            sal_pb2.GetStateInfoSizeRequest(type=drawn.record_type),  # type: ignore[arg-type]
            metadata=drawn.credential.metadata(bed.flow.tokens),
            timeout=CALL_TIMEOUT,
        )
    )
    if drawn.record_type not in RECORD_TYPES:
        assert got.refused(INVALID_ARGUMENT, "INVALID_RECORD_TYPE"), got
    else:  # open to every caller
        assert got.ok, got
        state = type_state((await describe_pcpus(bed))[drawn.pcpu], drawn.record_type)
        assert got.reply.sal_status == SAL_OK
        assert got.reply.size == state.max_record_size > 0


def test_fuzz_sal_get_state_info_size() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        run_examples(loop, 60, open_typed_calls, get_state_info_size)


# --- ClearStateInfo --------------------------------------------------------------------


@dataclass(frozen=True)
class ClearCall:
    pcpu: int
    record_type: int
    record_id: int | None
    credential: Credential


clear_calls = st.builds(
    ClearCall, pcpus, record_types, st.one_of(st.none(), record_ids), caller(XEN)
)


async def clear_state_info(bed: FuzzBed, drawn: ClearCall) -> None:
    store = bed.flow.host.servers[drawn.pcpu].firmware.store
    if sum(store.pending_count(t) for t in RECORD_TYPES) < 4:
        await seed(bed, per_type=2)
    before = (
        type_state((await describe_pcpus(bed))[drawn.pcpu], drawn.record_type)
        if (drawn.record_type in RECORD_TYPES)
        else None
    )
    pending = {t: [r.record_id for r in store.pending_records(t)] for t in RECORD_TYPES}
    next_id = store.next_record_id
    request = sal_pb2.ClearStateInfoRequest(type=drawn.record_type)  # type: ignore[arg-type]
    if drawn.record_id is not None:
        request.record_id = drawn.record_id
    got = await answer(
        stub(bed, drawn.pcpu).ClearStateInfo(
            request, metadata=drawn.credential.metadata(bed.flow.tokens), timeout=CALL_TIMEOUT
        )
    )
    refusal = auth_refusal("ClearStateInfo", drawn.credential)
    cleared = False
    if refusal is not None:
        assert got.code == refusal, got
    elif before is None:
        assert got.refused(INVALID_ARGUMENT, "INVALID_RECORD_TYPE"), got
    else:
        mine = pending[drawn.record_type]
        others = [rid for t, ids in pending.items() if t != drawn.record_type for rid in ids]
        rid = drawn.record_id
        if rid is None and not mine:
            assert got.ok and got.reply.sal_status == SAL_NO_INFORMATION, got
        elif rid is None or rid in mine:
            target = mine[0] if rid is None else rid
            assert got.ok, got
            reply = got.reply
            assert (reply.sal_status, reply.cleared_record_id) == (SAL_OK, target)
            assert not reply.already_cleared and reply.remaining == len(mine) - 1
            cleared = True
        elif rid in others:
            assert got.refused(INVALID_ARGUMENT, "RECORD_TYPE_MISMATCH"), got
        elif 1 <= rid < next_id:
            assert got.ok, got
            assert (got.reply.sal_status, got.reply.cleared_record_id) == (SAL_OK, rid)
            assert got.reply.already_cleared
        else:
            assert got.refused(INVALID_ARGUMENT, "UNKNOWN_RECORD_ID"), got
    if before is not None:
        after = type_state((await describe_pcpus(bed))[drawn.pcpu], drawn.record_type)
        assert after.cleared == before.cleared + cleared
        assert after.pending == before.pending - cleared
    await check_conservation(bed)


def test_fuzz_sal_clear_state_info() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        loop.run(seed(loop.bed))
        run_examples(loop, 150, clear_calls, clear_state_info)


# --- InjectError -----------------------------------------------------------------------


@dataclass(frozen=True)
class InjectCall:
    pcpu: int
    record_type: int
    severity: int
    sections: list[FuzzSection]
    count: int
    rate: float
    credential: Credential

    def request(self) -> sal_pb2.InjectErrorRequest:
        return sal_pb2.InjectErrorRequest(
            type=self.record_type,  # type: ignore[arg-type]
            severity=self.severity,  # type: ignore[arg-type]
            sections=[s.message for s in self.sections],
            count=self.count,
            rate_per_second=self.rate,
        )

    def invalid_reasons(self) -> set[str]:
        """Every reason a validating pCPU may give for this request (empty: it is valid)."""
        reasons = set()
        if self.record_type not in RECORD_TYPES:
            reasons.add("INVALID_RECORD_TYPE")
        if not 0 <= self.severity <= 3:
            reasons.add("INVALID_SEVERITY")
        if self.count > MAX_COUNT:
            reasons.add("COUNT_OUT_OF_RANGE")
        if not valid_rate(self.rate):
            reasons.add("RATE_OUT_OF_RANGE")
        elif 0 < self.rate < MIN_INJECT_RATE:
            reasons.add("RATE_TOO_LOW")
        elif self.rate > 0 and self.count <= MAX_COUNT and max(1, self.count) / self.rate > DAY:
            reasons.add("INJECTION_TOO_LONG")
        if len(self.sections) > 8:
            reasons.add("TOO_MANY_SECTIONS")
        if not all(s.valid for s in self.sections):
            reasons.add("INVALID_SECTION")
        return reasons


inject_calls = st.builds(
    InjectCall,
    pcpus,
    record_types,
    mostly(st.sampled_from(SEVERITIES), enum_values),
    st.one_of(st.just([]), section_lists),
    mostly(st.integers(0, 5), counts),
    mostly(st.just(0.0), rates),
    caller(OPERATOR),
)


async def inject_error(bed: FuzzBed, drawn: InjectCall) -> None:
    # Every pCPU, not only the drawn one: the check below compares all of them.
    quiet = all(s.firmware.paced_injections == 0 for s in bed.flow.host.servers.values())
    before = await describe_pcpus(bed)
    got = await answer(
        stub(bed, drawn.pcpu).InjectError(
            drawn.request(),
            metadata=drawn.credential.metadata(bed.flow.tokens),
            timeout=CALL_TIMEOUT,
        )
    )
    refusal = auth_refusal("InjectError", drawn.credential)
    reasons = drawn.invalid_reasons()
    if refusal is not None:
        assert got.code == refusal, got
    elif reasons:
        assert got.code == INVALID_ARGUMENT and got.reason in reasons, (got, reasons)
    elif drawn.rate > 0:
        assert got.ok or got.refused(
            grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_PACED_INJECTIONS"
        ), got
        if got.ok:
            assert (got.reply.accepted, got.reply.stored) == (max(1, drawn.count), 0)
    else:
        assert got.ok, got
        reply = got.reply
        assert reply.accepted == max(1, drawn.count)
        assert reply.stored + reply.overflowed == reply.accepted
        if reply.stored:
            assert reply.last_record_id - reply.first_record_id + 1 == reply.stored
        else:
            assert reply.first_record_id == reply.last_record_id == 0
    after = await check_conservation(bed)
    if not got.ok and quiet:  # a refused request created nothing
        for pcpu in bed.pcpus:
            assert after[pcpu].next_record_id == before[pcpu].next_record_id
            assert [t.created for t in after[pcpu].types] == [t.created for t in before[pcpu].types]


def test_fuzz_sal_inject_error() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        run_examples(loop, 200, inject_calls, inject_error)


def normalized(section: record_pb2.Section) -> record_pb2.Section:
    """A section as the firmware stores it: an empty 16-byte id means 16 zero bytes."""
    copy = record_pb2.Section()
    copy.CopyFrom(section)
    if copy.HasField("platform_memory") and not copy.platform_memory.oem_id:
        copy.platform_memory.oem_id = bytes(16)
    if copy.HasField("platform_specific") and not copy.platform_specific.guid:
        copy.platform_specific.guid = bytes(16)
    return copy


async def inject_sections(bed: FuzzBed, drawn: tuple[int, int, list[FuzzSection]]) -> None:
    """Only the sections vary: a valid list is stored byte for byte, any other is refused
    with INVALID_SECTION / TOO_MANY_SECTIONS and creates nothing."""
    pcpu, record_type, fuzzed = drawn
    store = bed.flow.host.servers[pcpu].firmware.store
    if store.pending_count(record_type) >= store.capacity:
        await stub(bed, pcpu).ClearStateInfo(
            sal_pb2.ClearStateInfoRequest(type=record_type),  # type: ignore[arg-type]
            metadata=bed.flow.md(XEN),
        )
    before = await describe_pcpus(bed)
    got = await answer(
        stub(bed, pcpu).InjectError(
            sal_pb2.InjectErrorRequest(
                type=record_type,  # type: ignore[arg-type]
                sections=[s.message for s in fuzzed],
                count=1,
            ),
            metadata=bed.flow.md(OPERATOR),
            timeout=CALL_TIMEOUT,
        )
    )
    after = await check_conservation(bed)
    if len(fuzzed) > 8:
        assert got.refused(INVALID_ARGUMENT, "TOO_MANY_SECTIONS"), got
    elif not all(s.valid for s in fuzzed):
        assert got.refused(INVALID_ARGUMENT, "INVALID_SECTION"), got
    else:
        assert got.ok and got.reply.stored == 1, got
        stored = next(
            r for r in store.pending_records(record_type) if r.record_id == got.reply.last_record_id
        )
        sent = [normalized(s.message) for s in fuzzed]
        assert list(records.error_record(pcpu, stored).sections) == sent
        return
    assert after[pcpu].next_record_id == before[pcpu].next_record_id
    assert [t.created for t in after[pcpu].types] == [t.created for t in before[pcpu].types]


def test_fuzz_sal_inject_sections() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        drawn = st.tuples(pcpus, st.sampled_from(RECORD_TYPES), section_lists)
        run_examples(loop, 150, drawn, inject_sections)


# --- WatchInterrupts -------------------------------------------------------------------


@dataclass(frozen=True)
class WatchCall:
    pcpu: int
    credential: Credential
    action: str
    """"none": cancel at once; "read": read one with a short timeout; "inject": subscribe,
    inject one record, read."""
    record_type: int


watch_calls = st.builds(
    WatchCall,
    pcpus,
    caller(XEN),
    st.sampled_from(["none", "read", "inject"]),
    st.sampled_from(RECORD_TYPES),
)


async def wait_subscribers(bed: FuzzBed, pcpu: int, count: int) -> None:
    """Until the pCPU's interrupt line has at most count subscribers (5 s at most)."""
    firmware = bed.flow.host.servers[pcpu].firmware
    for _ in range(1000):
        if firmware.line.subscribers <= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"pCPU {pcpu}: {firmware.line.subscribers} subscribers, not {count}")


def test_fuzz_sal_watch_interrupts() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        run_examples(loop, 60, watch_calls, watch_interrupts)
        for pcpu in PCPUS:  # only the coordinator's own stream is left
            loop.run(wait_subscribers(loop.bed, pcpu, 1))


async def watch_interrupts(bed: FuzzBed, drawn: WatchCall) -> None:
    firmware = bed.flow.host.servers[drawn.pcpu].firmware
    before = firmware.line.subscribers
    call = stub(bed, drawn.pcpu).WatchInterrupts(
        sal_pb2.WatchInterruptsRequest(), metadata=drawn.credential.metadata(bed.flow.tokens)
    )
    refusal = auth_refusal("WatchInterrupts", drawn.credential)
    try:
        if refusal is not None:  # refused before it subscribed (issue 12 item 3)
            async with asyncio.timeout(CALL_TIMEOUT):
                got = await answer(call.read())
            assert got.code == refusal, got
            assert firmware.line.subscribers == before
        elif drawn.action != "none":
            async with asyncio.timeout(CALL_TIMEOUT):
                await call.initial_metadata()  # subscribed
            assert not call.done()
            if drawn.action == "inject":
                counters = firmware.store.state(drawn.record_type).counters
                created = await bed.flow.inject(drawn.pcpu, record_type=drawn.record_type)
                after = firmware.store.state(drawn.record_type).counters
                # Withheld only when the line was masked (by the coordinator's poller).
                if after.interrupts_raised > counters.interrupts_raised:
                    async with asyncio.timeout(CALL_TIMEOUT):
                        raised = await call.read()
                    assert raised is not grpc.aio.EOF
                    assert (raised.pcpu, raised.type) == (drawn.pcpu, drawn.record_type)
                    assert raised.record_id == created.first_record_id
            else:
                try:
                    async with asyncio.timeout(0.02):
                        raised = await call.read()
                    assert raised is not grpc.aio.EOF and raised.pcpu == drawn.pcpu
                except TimeoutError:
                    pass
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.CANCELLED:
            check_refusal(error)
    finally:
        call.cancel()
    await wait_subscribers(bed, drawn.pcpu, before)
    await check_conservation(bed)


# --- SetInterruptMask / DescribePcpu ---------------------------------------------------


@dataclass(frozen=True)
class MaskCall:
    pcpu: int
    record_type: int
    masked: bool
    credential: Credential


mask_calls = st.builds(MaskCall, pcpus, record_types, st.booleans(), caller(XEN))


async def set_interrupt_mask(bed: FuzzBed, drawn: MaskCall) -> None:
    store = bed.flow.host.servers[drawn.pcpu].firmware.store
    was = {t: store.masked(t) for t in RECORD_TYPES}
    got = await answer(
        stub(bed, drawn.pcpu).SetInterruptMask(
            sal_pb2.SetInterruptMaskRequest(type=drawn.record_type, masked=drawn.masked),  # type: ignore[arg-type]
            metadata=drawn.credential.metadata(bed.flow.tokens),
            timeout=CALL_TIMEOUT,
        )
    )
    refusal = auth_refusal("SetInterruptMask", drawn.credential)
    if refusal is not None:
        assert got.code == refusal, got
    elif drawn.record_type not in RECORD_TYPES:
        assert got.refused(INVALID_ARGUMENT, "INVALID_RECORD_TYPE"), got
    else:
        assert got.ok, got
        state = type_state((await describe_pcpus(bed))[drawn.pcpu], drawn.record_type)
        assert got.reply.previously_masked == was[drawn.record_type]
        assert state.masked == drawn.masked
        assert (got.reply.pending, got.reply.created) == (state.pending, state.created)
    if not got.ok:  # a refused call changed no line
        assert {t: store.masked(t) for t in RECORD_TYPES} == was
    await check_conservation(bed)


def test_fuzz_sal_set_interrupt_mask() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        loop.run(seed(loop.bed, per_type=1))
        run_examples(loop, 80, mask_calls, set_interrupt_mask)


async def describe_pcpu(bed: FuzzBed, drawn: tuple[int, Credential, bytes]) -> None:
    pcpu, credential, extra = drawn
    bed.flow.sal(pcpu)  # opens the pCPU's channel
    call = bed.flow.sal_channels[pcpu].unary_unary(
        "/xenmca.sal.v1.SalService/DescribePcpu",
        request_serializer=None,
        response_deserializer=sal_pb2.DescribePcpuResponse.FromString,
    )
    got = await answer(
        call(extra, metadata=credential.metadata(bed.flow.tokens), timeout=CALL_TIMEOUT)
    )
    assert got.ok, got  # open to every caller; unknown fields are ignored
    assert got.reply.pcpu == pcpu and len(got.reply.types) == len(RECORD_TYPES)
    await check_conservation(bed)


def test_fuzz_sal_describe_pcpu() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        loop.run(seed(loop.bed, per_type=1))
        run_examples(loop, 40, st.tuples(pcpus, credentials, unknown_fields), describe_pcpu)


# --- ListInjections / CancelInjection --------------------------------------------------


async def start_slow_injections(bed: FuzzBed, per_pcpu: int = 3) -> None:
    """A few paced injections on every pCPU that will not end during the test."""
    for pcpu in bed.pcpus:
        for _ in range(per_pcpu):
            await stub(bed, pcpu).InjectError(
                sal_pb2.InjectErrorRequest(
                    type=record_pb2.RECORD_TYPE_CMC, count=2, rate_per_second=MIN_INJECT_RATE
                ),
                metadata=bed.flow.md(OPERATOR),
            )


async def list_and_cancel(bed: FuzzBed, drawn: tuple[int, int, Credential]) -> None:
    """A running id is cancelled once (then gone from the list), 0 is INVALID_ARGUMENT,
    any other id NOT_FOUND; both RPCs are the operator's."""
    pcpu, injection_id, credential = drawn
    metadata = credential.metadata(bed.flow.tokens)
    listed = await answer(
        stub(bed, pcpu).ListInjections(
            sal_pb2.ListInjectionsRequest(), metadata=metadata, timeout=CALL_TIMEOUT
        )
    )
    refusal = auth_refusal("ListInjections", credential)
    if refusal is not None:
        assert listed.code == refusal, listed
    else:
        assert listed.ok and listed.reply.pcpu == pcpu, listed
    running = {
        i.injection_id
        for i in (
            await stub(bed, pcpu).ListInjections(
                sal_pb2.ListInjectionsRequest(), metadata=bed.flow.md(OPERATOR)
            )
        ).injections
    }
    got = await answer(
        stub(bed, pcpu).CancelInjection(
            sal_pb2.CancelInjectionRequest(injection_id=injection_id),
            metadata=metadata,
            timeout=CALL_TIMEOUT,
        )
    )
    refusal = auth_refusal("CancelInjection", credential)
    if refusal is not None:
        assert got.code == refusal, got
    elif injection_id == 0:
        assert got.refused(INVALID_ARGUMENT, "INJECTION_ID_REQUIRED"), got
    elif injection_id in running:
        assert got.ok and got.reply.injection.injection_id == injection_id, got
        done = got.reply.injection
        assert done.created == done.stored + done.overflowed <= done.count
    else:
        assert got.refused(grpc.StatusCode.NOT_FOUND, "INJECTION_NOT_FOUND"), got
    after = bed.flow.host.servers[pcpu].firmware.injections()
    expected = running - {injection_id} if got.ok else running
    assert {i.injection_id for i in after} == expected
    await check_conservation(bed)


def test_fuzz_sal_list_and_cancel_injections() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        loop.run(start_slow_injections(loop.bed))
        ids = mostly(st.integers(0, 4), record_ids)
        run_examples(loop, 60, st.tuples(pcpus, ids, caller(OPERATOR)), list_and_cancel)


# --- sections the layout cannot encode, and messages over the size limit ----------------


def _processor(checks: int) -> record_pb2.Section:
    return record_pb2.Section(
        processor=record_pb2.ProcessorSection(
            cache_checks=[record_pb2.ModCheck(check_info=i) for i in range(checks)]
        )
    )


UNENCODABLE = {
    "16 cache checks": _processor(16),
    "16 bus checks": record_pb2.Section(
        processor=record_pb2.ProcessorSection(bus_checks=[record_pb2.ModCheck()] * 16)
    ),
    "5-byte oem_id": record_pb2.Section(platform_memory=record_pb2.MemorySection(oem_id=b"12345")),
    "17-byte platform guid": record_pb2.Section(
        platform_specific=record_pb2.PlatformSpecificSection(guid=bytes(17))
    ),
    "u16 node of 65536": record_pb2.Section(platform_memory=record_pb2.MemorySection(node=65536)),
    "pci err_type of 2**32-1": record_pb2.Section(
        pci_bus=record_pb2.PciBusSection(err_type=MAX_U32)
    ),
    "error_recovery_info of 256": record_pb2.Section(
        error_recovery_info=256, pci_bus=record_pb2.PciBusSection()
    ),
    "oem_data of 1025 bytes": record_pb2.Section(
        pci_bus=record_pb2.PciBusSection(oem_data=bytes(1025))
    ),
    "no body": record_pb2.Section(error_recovery_info=0x81),
}


@pytest.mark.parametrize("name", sorted(UNENCODABLE))
async def test_pcpu_refuses_a_section_the_layout_cannot_encode(name: str) -> None:
    async with fuzz_bed(pcpus=1) as bed:
        before = (await describe_pcpus(bed))[0]
        sections = [_processor(15), UNENCODABLE[name]]  # a good section first
        got = await answer(
            stub(bed, 0).InjectError(
                sal_pb2.InjectErrorRequest(
                    type=record_pb2.RECORD_TYPE_CMC, sections=sections, count=3
                ),
                metadata=bed.flow.md(OPERATOR),
                timeout=CALL_TIMEOUT,
            )
        )
        assert got.refused(INVALID_ARGUMENT, "INVALID_SECTION"), got
        assert got.info is not None and got.info.metadata["field"] == "sections"
        after = await check_conservation(bed)
        assert after[0].next_record_id == before.next_record_id
        assert [t.created for t in after[0].types] == [t.created for t in before.types]
        # The same request with the section fixed is accepted.
        fixed = await answer(
            stub(bed, 0).InjectError(
                sal_pb2.InjectErrorRequest(
                    type=record_pb2.RECORD_TYPE_CMC, sections=[_processor(15)], count=3
                ),
                metadata=bed.flow.md(OPERATOR),
                timeout=CALL_TIMEOUT,
            )
        )
        assert fixed.ok and fixed.reply.stored == 3, fixed


async def test_oversized_inject_is_refused_by_grpc_and_the_pcpu_lives_on() -> None:
    """5 MiB of oem_data is over the 4 MiB message limit: gRPC itself answers
    RESOURCE_EXHAUSTED (no ErrorInfo can exist there) and nothing is created."""
    huge = record_pb2.Section(
        platform_specific=record_pb2.PlatformSpecificSection(oem_data=bytes(5 * 1024 * 1024))
    )
    request = sal_pb2.InjectErrorRequest(type=record_pb2.RECORD_TYPE_CPE, sections=[huge])
    async with fuzz_bed(pcpus=1) as bed:
        before = (await describe_pcpus(bed))[0]
        # A client without a send limit, so the server's limit is what refuses.
        unlimited = grpc.aio.insecure_channel(
            bed.flow.host.addresses[0], options=[("grpc.max_send_message_length", -1)]
        )
        try:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await sal_grpc.SalServiceStub(unlimited).InjectError(
                    request, metadata=bed.flow.md(OPERATOR), timeout=CALL_TIMEOUT
                )
        finally:
            await unlimited.close()
        assert is_oversized_refusal(raised.value), raised.value
        # Our own channels refuse to send it at all, with the same code.
        with pytest.raises(grpc.aio.AioRpcError) as local:
            await stub(bed, 0).InjectError(
                request, metadata=bed.flow.md(OPERATOR), timeout=CALL_TIMEOUT
            )
        assert is_oversized_refusal(local.value), local.value
        after = await check_conservation(bed)
        assert [t.created for t in after[0].types] == [t.created for t in before.types]
        await check_alive_and_conserved(bed)


async def test_paced_injections_are_bounded_even_at_absurd_rates() -> None:
    """The slowest representable rate is refused (RATE_TOO_LOW) and creates nothing; the
    slowest accepted one is bounded by the limit of paced injections per pCPU: one more
    is RESOURCE_EXHAUSTED with an ErrorInfo, and the pCPU answers throughout."""
    async with fuzz_bed(pcpus=1) as bed:
        absurd = sal_pb2.InjectErrorRequest(
            type=record_pb2.RECORD_TYPE_CPE, count=2, rate_per_second=5e-324
        )
        got = await answer(
            stub(bed, 0).InjectError(absurd, metadata=bed.flow.md(OPERATOR), timeout=5)
        )
        assert got.refused(INVALID_ARGUMENT, "RATE_TOO_LOW"), got
        request = sal_pb2.InjectErrorRequest(
            type=record_pb2.RECORD_TYPE_CPE, count=2, rate_per_second=MIN_INJECT_RATE
        )
        for _ in range(MAX_PACED_INJECTIONS):
            got = await answer(
                stub(bed, 0).InjectError(request, metadata=bed.flow.md(OPERATOR), timeout=5)
            )
            assert got.ok and got.reply.accepted == 2, got
        one_more = await answer(
            stub(bed, 0).InjectError(request, metadata=bed.flow.md(OPERATOR), timeout=5)
        )
        assert one_more.refused(grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_PACED_INJECTIONS")
        firmware = bed.flow.host.servers[0].firmware
        await bed.flow.watch.until(
            lambda: (
                firmware.store.state(record_pb2.RECORD_TYPE_CPE).counters.created
                == MAX_PACED_INJECTIONS
            )
        )
        await check_alive_and_conserved(bed)


async def test_a_pcpu_with_overlapping_paced_injections_stops() -> None:
    # Found by fuzzing: start_paced once rebound its task set, so a finished task
    # stayed in it and close() waited forever.
    async with fuzz_bed(pcpus=1) as bed:
        firmware = bed.flow.host.servers[0].firmware
        slow = sal_pb2.InjectErrorRequest(
            type=record_pb2.RECORD_TYPE_CMC, count=2, rate_per_second=0.001
        )
        try:
            for _ in range(2):  # the second starts while the first still runs
                await stub(bed, 0).InjectError(slow, metadata=bed.flow.md(OPERATOR))
            assert firmware.paced_injections == 2
            async with asyncio.timeout(2):
                await firmware.close()
        finally:
            await end_paced_injections(bed.flow.host)  # let the bed stop either way
