"""Fuzzing SalService.InjectError of real pCPU servers (with the coordinator connected):
arbitrary fields and sections, sections the layout cannot encode, messages over the size limit.

The only acceptable answers are a success or a canonical code with one ErrorInfo; for every
example an oracle says which one, and afterwards every pCPU still answers and conserves its
records. The other SalService RPCs are fuzzed in test_fuzz_sal_reads.py,
test_fuzz_sal_interrupts.py and test_fuzz_sal_paced.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import grpc
import pytest
from fuzz_sal_helpers import (
    INVALID_ARGUMENT,
    MIN_INJECT_RATE,
    PCPUS,
    auth_refusal,
    pcpus,
    record_types,
    stub,
)
from fuzz_strategies import (
    MAX_U32,
    RECORD_TYPES,
    SEVERITIES,
    Credential,
    FuzzSection,
    caller,
    counts,
    enum_values,
    mostly,
    rates,
    section_lists,
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
    describe_pcpus,
    fuzz_bed,
    is_oversized_refusal,
    run_examples,
)

from xenmca.pcpu import records
from xenmca.record.v1 import record_pb2
from xenmca.rpc.identity import OPERATOR, XEN
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

MAX_COUNT = 1_000_000
DAY = 86_400 * (1 + 1e-9)
"""The longest a paced injection may last (count / rate), with the pCPU's float slack."""


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
        shown = records.error_record(pcpu, stored)
        assert list(shown.sections) == sent
        # What creation encoded for GET is what decoding the raw bytes gives.
        assert shown == records.error_record(pcpu, replace(stored, shown_sections=None))
        return
    assert after[pcpu].next_record_id == before[pcpu].next_record_id
    assert [t.created for t in after[pcpu].types] == [t.created for t in before[pcpu].types]


def test_fuzz_sal_inject_sections() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        drawn = st.tuples(pcpus, st.sampled_from(RECORD_TYPES), section_lists)
        run_examples(loop, 150, drawn, inject_sections)


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
