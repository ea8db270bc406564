"""Shared pieces of the fuzz tests (test_fuzz_*.py): a bed on its own event loop, strategies
for arbitrary request fields and credentials, and the checks every answer and every state
must pass.

Hypothesis runs examples synchronously, so each fuzz test starts one in-process bed (real
pCPU servers and the coordinator on port 0) on an ``asyncio.Runner`` and drives every
example through ``LoopBed.run``. The only tests here check the checkers themselves.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import grpc
from flow_harness import DOMU, EventWatch, FlowBed
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.pcpu.model import DEFAULT_CAPACITY
from xenmca.pcpu.server import PcpuHost
from xenmca.record.v1 import record_pb2
from xenmca.rpc.errors import ERROR_DOMAIN, error_info_of
from xenmca.rpc.events import Event
from xenmca.rpc.identity import AUTH_HEADER, DOM0, OPERATOR, XEN, TokenBook, call_metadata
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.testing.flow import attached_coordinator, make_tokens, running_pcpus
from xenmca.xen.queues import State

T = TypeVar("T")

CANONICAL_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
REASON = re.compile(r"[A-Z][A-Z0-9_]*")
CALL_TIMEOUT = 10.0
"""Every fuzzed call has a deadline: a hang shows as DEADLINE_EXCEEDED, which is a failure."""

RECORD_TYPES = (
    record_pb2.RECORD_TYPE_MCA,
    record_pb2.RECORD_TYPE_INIT,
    record_pb2.RECORD_TYPE_CMC,
    record_pb2.RECORD_TYPE_CPE,
)
SEVERITIES = (
    record_pb2.SEVERITY_UNSPECIFIED,
    record_pb2.SEVERITY_RECOVERABLE,
    record_pb2.SEVERITY_FATAL,
    record_pb2.SEVERITY_CORRECTED,
)
SAL_OK, SAL_CALL_ERROR, SAL_NO_INFORMATION = 0, -3, -5
MAX_U32 = 2**32 - 1
MAX_U64 = 2**64 - 1


# --- answers -------------------------------------------------------------------------


def check_refusal(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """A refusal is a canonical code with exactly one ErrorInfo of an UPPER_SNAKE_CASE reason."""
    code = error.code()
    assert code in CANONICAL_CODES, f"{code.name}: {error.details()}"
    statuses = [
        status_pb2.Status.FromString(value)
        for key, value in error.trailing_metadata() or ()
        if key == "grpc-status-details-bin"
    ]
    assert len(statuses) == 1, f"{code.name} without one google.rpc.Status: {error.details()}"
    status = statuses[0]
    assert status.code == code.value[0], (status.code, code)
    infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    assert len(infos) == 1 == len(status.details), list(status.details)
    info = error_info_of(error)
    assert info is not None
    assert REASON.fullmatch(info.reason), info.reason
    assert info.domain == ERROR_DOMAIN
    return info


@dataclass(frozen=True)
class Answer:
    """What one call gave: its reply, or the refusal's code and ErrorInfo."""

    reply: Any = None
    code: grpc.StatusCode | None = None
    info: error_details_pb2.ErrorInfo | None = None

    @property
    def ok(self) -> bool:
        return self.code is None

    @property
    def reason(self) -> str | None:
        return self.info.reason if self.info is not None else None

    def refused(self, code: grpc.StatusCode, *reasons: str) -> bool:
        return self.code == code and (not reasons or self.reason in reasons)


async def answer(call: Awaitable[T]) -> Answer:
    """Await a unary call; a failure must be an acceptable refusal (else AssertionError)."""
    try:
        return Answer(reply=await call)
    except grpc.aio.AioRpcError as error:
        return Answer(code=error.code(), info=check_refusal(error))


def is_oversized_refusal(error: grpc.aio.AioRpcError) -> bool:
    """gRPC's own refusal of a message above the size limit: no ErrorInfo is possible there."""
    return error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and error_info_of(error) is None


# --- credentials ---------------------------------------------------------------------

IDENTITIES = (DOM0, OPERATOR, XEN, DOMU)
"""Identities with a token in the bed's book (DOMU is another domain)."""
PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
"""Metadata values gRPC lets a client send (no spaces: gRPC may trim them)."""


@dataclass(frozen=True)
class Credential:
    """How a call presents itself. ``identity`` is the identity a server should see (None:
    unauthenticated); ``kind`` says how the metadata is made."""

    kind: str
    identity: str | None = None
    text: str = ""

    def metadata(self, tokens: TokenBook) -> tuple[tuple[str, str], ...]:
        if self.kind == "token":
            assert self.identity is not None
            return call_metadata(tokens.token_for(self.identity))
        if self.kind == "unknown-token":  # a well-formed bearer token nobody issued
            return ((AUTH_HEADER, f"Bearer zz{self.text}"),)
        if self.kind == "not-bearer":  # a valid token without the scheme
            return ((AUTH_HEADER, f"{tokens.token_for(XEN)}{self.text}"),)
        if self.kind == "wrong-header":  # a valid operator token under another key
            return (("x-authorization", f"Bearer {tokens.token_for(OPERATOR)}"),)
        if self.kind == "other-header":
            return (("x-fuzz", f"v{self.text}"),)
        return ()

    def __repr__(self) -> str:
        return f"Credential({self.kind}:{self.identity or self.text!r})"


credentials = st.one_of(
    st.sampled_from([Credential("token", identity) for identity in IDENTITIES]),
    st.sampled_from(["none", "wrong-header"]).map(Credential),
    st.builds(
        Credential,
        kind=st.sampled_from(["unknown-token", "not-bearer", "other-header"]),
        text=st.text(PRINTABLE, max_size=40),
    ),
)


# --- field values --------------------------------------------------------------------


def mostly(usual: st.SearchStrategy[T], anything: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """Three draws in four from ``usual``, the rest from ``anything`` (so that the valid
    paths are exercised as well as the refusals)."""
    return st.integers(0, 3).flatmap(lambda pick: usual if pick else anything)


def caller(identity: str) -> st.SearchStrategy[Credential]:
    """Mostly the identity that may make the call, else any credential."""
    return mostly(st.just(Credential("token", identity)), credentials)


enum_values = st.one_of(
    st.integers(0, 4),
    st.sampled_from([-1, 5, 12345, 2**31 - 1, -(2**31)]),
    st.integers(-(2**31), 2**31 - 1),
)
"""A proto3 open enum field: the known values, and any other int32."""
u32_values = st.one_of(
    st.sampled_from([0, 1, 2, 255, 256, 65535, 65536, 1_000_000, 1_000_001, 2**31, MAX_U32]),
    st.integers(0, MAX_U32),
)
u64_values = st.one_of(
    st.sampled_from([0, 1, 2**32, 2**63 - 1, 2**63, MAX_U64]),
    st.integers(0, MAX_U64),
)
record_ids = st.one_of(
    st.integers(0, 40), st.sampled_from([2**31, 2**32, 2**63, MAX_U64]), st.integers(0, MAX_U64)
)
counts = st.one_of(st.integers(0, 5), u32_values)
rates = st.one_of(
    st.sampled_from(
        [0.0, -0.0, math.nan, math.inf, -math.inf, -1.0, 5e-324, 1e-300, 0.5, 1e6, 1e6 + 1, 1e308]
    ),
    st.floats(allow_nan=True, allow_infinity=True),
)


def valid_rate(rate: float) -> bool:
    return math.isfinite(rate) and 0 <= rate <= 1_000_000


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


unknown_fields = st.lists(
    st.tuples(
        st.integers(20, 10_000), st.one_of(st.integers(0, 2**64 - 1), st.binary(max_size=64))
    ),
    max_size=4,
).map(
    lambda fields: b"".join(
        _varint(number << 3) + _varint(value)
        if isinstance(value, int)
        else _varint(number << 3 | 2) + _varint(len(value)) + value
        for number, value in fields
    )
)
"""Well-formed protobuf fields with numbers no xenmca message uses (ignored by servers)."""


# --- sections --------------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzSection:
    """A generated Section and whether the SAL layout can encode it."""

    message: record_pb2.Section
    valid: bool

    def __repr__(self) -> str:
        kind = self.message.WhichOneof("body")
        return f"FuzzSection({kind}, valid={self.valid}, {self.message.ByteSize()} bytes)"


_U16_FIELDS = ("node", "card", "module", "bank", "device", "row", "column", "bit_position")
_U64_MEMORY = (
    "error_status",
    "physical_addr",
    "addr_mask",
    "requestor_id",
    "responder_id",
    "target_id",
    "bus_spec_data",
)
_U64_PCI = (
    "err_status",
    "bus_address",
    "bus_data",
    "bus_cmd",
    "requestor_id",
    "responder_id",
    "target_id",
)
_CHECK_KINDS = ("cache_checks", "tlb_checks", "bus_checks")
MAX_CHECKS, MAX_OEM_DATA = 15, 1024

mod_checks = st.builds(
    record_pb2.ModCheck,
    check_info=u64_values,
    requestor_identifier=u64_values,
    responder_identifier=u64_values,
    target_identifier=u64_values,
    precise_ip=u64_values,
)
oem_data = st.one_of(
    st.binary(max_size=48), st.sampled_from([0, 1023, MAX_OEM_DATA]).map(lambda n: b"\xa5" * n)
)


@st.composite
def sections(draw: st.DrawFn) -> FuzzSection:
    """A Section of any kind (or with no body), valid most of the time, else broken in one
    way the layout must refuse: a u8/u16 field out of range, a 17-byte GUID, a 5-byte
    oem_id, more than 15 checks, oem_data over 1 KiB, or no body."""
    kind = draw(st.sampled_from(["processor", "platform_memory", "pci_bus", "platform_specific"]))
    message = record_pb2.Section(error_recovery_info=draw(st.integers(0, 255)))
    if kind == "processor":
        body = message.processor
        body.proc_error_map = draw(u64_values)
        body.proc_state_parameter = draw(u64_values)
        body.proc_cr_lid = draw(u64_values)
        for name in _CHECK_KINDS:
            getattr(body, name).extend(draw(st.lists(mod_checks, max_size=3)))
    elif kind == "platform_memory":
        mem = message.platform_memory
        for name in _U64_MEMORY:
            setattr(mem, name, draw(u64_values))
        for name in _U16_FIELDS:
            setattr(mem, name, draw(st.integers(0, 65535)))
        mem.oem_id = draw(st.one_of(st.just(b""), st.binary(min_size=16, max_size=16)))
        mem.oem_data = draw(oem_data)
    elif kind == "pci_bus":
        pci = message.pci_bus
        for name in _U64_PCI:
            setattr(pci, name, draw(u64_values))
        pci.err_type = draw(st.integers(0, 65535))
        pci.bus_id = draw(st.integers(0, 65535))
        pci.oem_data = draw(oem_data)
    else:
        plat = message.platform_specific
        plat.err_status = draw(u64_values)
        plat.guid = draw(st.one_of(st.just(b""), st.binary(min_size=16, max_size=16)))
        plat.oem_data = draw(oem_data)
    if draw(st.integers(0, 3)) != 0:
        return FuzzSection(message, True)
    breakages = ["error_recovery_info", "no_body"] + {
        "processor": ["checks"],
        "platform_memory": ["u16", "oem_id", "oem_data"],
        "pci_bus": ["u16", "oem_data"],
        "platform_specific": ["guid", "oem_data"],
    }[kind]
    breakage = draw(st.sampled_from(breakages))
    if breakage == "error_recovery_info":
        message.error_recovery_info = draw(st.integers(256, MAX_U32))
    elif breakage == "no_body":
        message.ClearField(kind)  # type: ignore[arg-type]
    elif breakage == "checks":
        name = draw(st.sampled_from(_CHECK_KINDS))
        extra = MAX_CHECKS + 1 - len(getattr(message.processor, name))
        getattr(message.processor, name).extend([record_pb2.ModCheck(check_info=7)] * extra)
    elif breakage == "u16":
        target = message.platform_memory if kind == "platform_memory" else message.pci_bus
        names = _U16_FIELDS if kind == "platform_memory" else ("err_type", "bus_id")
        setattr(target, draw(st.sampled_from(names)), draw(st.integers(65536, MAX_U32)))
    elif breakage in ("oem_id", "guid"):
        size = draw(st.sampled_from([1, 5, 15, 17, 32]))
        if kind == "platform_memory":
            message.platform_memory.oem_id = bytes(range(size))
        else:
            message.platform_specific.guid = bytes(range(size))
    else:
        getattr(message, kind).oem_data = b"\x5a" * draw(st.sampled_from([1025, 4096]))
    return FuzzSection(message, False)


section_lists = st.one_of(
    st.lists(sections(), min_size=1, max_size=3),
    st.integers(8, 10).map(
        lambda n: [FuzzSection(record_pb2.Section(pci_bus=record_pb2.PciBusSection()), True)] * n
    ),
)
"""Up to three arbitrary sections, or 8 to 10 small valid ones (the limit is 8)."""


# --- the bed ---------------------------------------------------------------------------


@dataclass
class FuzzBed:
    """A FlowBed whose pCPUs report their events (record_cleared) to the test."""

    flow: FlowBed
    pcpu_events: list[Event] = field(default_factory=list)

    @property
    def pcpus(self) -> list[int]:
        return sorted(self.flow.host.servers)

    def cleared_events(self) -> list[Event]:
        return [e for e in self.pcpu_events if e["kind"] == "record_cleared"]


@asynccontextmanager
async def fuzz_bed(
    pcpus: int = 2, capacity: int = DEFAULT_CAPACITY, **config: Any
) -> AsyncIterator[FuzzBed]:
    """xenmca.testing's pCPUs and coordinator, with the pCPUs' events kept apart and a chosen
    capacity; paced injections ended and the pCPUs stopped without grace on the way out."""
    tokens = make_tokens()
    pcpu_watch = EventWatch()
    async with running_pcpus(pcpus, tokens, pcpu_watch, capacity=capacity, stop_grace=None) as host:
        try:
            async with attached_coordinator(host, tokens, EventWatch(), **config) as flow:
                yield FuzzBed(flow, pcpu_watch.events)
        finally:
            await end_paced_injections(host)


async def end_paced_injections(host: PcpuHost) -> None:
    """Cancel every paced injection and forget the tasks, so that a bed stops at once.

    (Fuzzed rates can be absurdly low: an injection may be due in 1e300 s.)
    """
    for server in host.servers.values():
        firmware = server.firmware
        tasks = list(firmware._paced)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        firmware._paced.clear()


class LoopBed:
    """A fuzz bed on its own event loop, for synchronous hypothesis examples.

    ``with LoopBed(pcpus=2) as loop:`` starts it; ``loop.run(coro)`` runs one coroutine
    on the bed's loop (the servers serve while it runs).
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._runner = asyncio.Runner()
        self._context: Any = None
        self.bed: FuzzBed

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def __enter__(self) -> LoopBed:
        self._context = fuzz_bed(**self._options)
        try:
            self.bed = self.run(self._context.__aenter__())
        except BaseException:
            self._runner.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.run(self._context.__aexit__(exc_type, exc, tb))
        finally:
            self._runner.close()


def run_examples(
    loop: LoopBed,
    examples: int,
    strategy: st.SearchStrategy[Any],
    body: Callable[[FuzzBed, Any], Coroutine[Any, Any, None]],
) -> None:
    """body(bed, drawn) on the bed's loop for each of ``examples`` draws; then the bed
    must still be alive and conserving."""

    @settings(max_examples=examples)
    @given(strategy)
    def example(drawn: Any) -> None:
        loop.run(body(loop.bed, drawn))

    example()
    loop.run(check_alive_and_conserved(loop.bed))


# --- invariants ------------------------------------------------------------------------


async def describe_pcpus(bed: FuzzBed) -> dict[int, sal_pb2.DescribePcpuResponse]:
    flow = bed.flow
    return {
        pcpu: await flow.sal(pcpu).DescribePcpu(
            sal_pb2.DescribePcpuRequest(), metadata=flow.md(OPERATOR), timeout=CALL_TIMEOUT
        )
        for pcpu in bed.pcpus
    }


def type_state(
    description: sal_pb2.DescribePcpuResponse, record_type: int
) -> sal_pb2.RecordTypeState:
    return next(t for t in description.types if t.type == record_type)


async def check_conservation(bed: FuzzBed) -> dict[int, sal_pb2.DescribePcpuResponse]:
    """Every pCPU answers, and for every type created == pending + cleared + overflowed."""
    described = await describe_pcpus(bed)
    for pcpu, description in described.items():
        assert description.pcpu == pcpu
        assert sorted(t.type for t in description.types) == list(RECORD_TYPES)
        for state in description.types:
            where = (pcpu, record_pb2.RecordType.Name(state.type))
            assert state.created == state.pending + state.cleared + state.overflowed, (
                where,
                state,
            )
            assert state.pending <= state.capacity, where
            if state.pending:
                assert 1 <= state.oldest_record_id <= state.newest_record_id, where
                assert state.newest_record_id < description.next_record_id, where
            else:
                assert state.oldest_record_id == state.newest_record_id == 0, where
            assert state.max_record_size > 0, where
    return described


def check_queues(bed: FuzzBed) -> None:
    """The coordinator's queues: at most one entry per (pCPU, type), states consistent."""
    coordinator = bed.flow.coordinator
    known = set(coordinator.links)
    for record_type, queue in coordinator.queues.items():
        name = record_pb2.RecordType.Name(record_type)
        waiting = [entry.pcpu for entry in queue]
        assert len(waiting) == len(set(waiting)), (name, waiting)
        assert set(waiting) <= known, (name, waiting)
        for entry in queue:
            assert entry.state is State.QUEUED and entry.record_id == 0, (name, entry)
            assert queue.entry_for(entry.pcpu) is entry, (name, entry)
        in_flight = queue.in_flight
        if in_flight is not None:
            assert in_flight.pcpu in known, (name, in_flight)
            assert in_flight.pcpu not in waiting, (name, in_flight, waiting)
            assert in_flight.state in (State.INJECTED, State.READ), (name, in_flight)
            assert (in_flight.state is State.READ) == (in_flight.record_id != 0), (name, in_flight)


def session_consistent(bed: FuzzBed) -> bool:
    """An injected type has an entry in flight only while a dom0 is attached."""
    coordinator = bed.flow.coordinator
    if coordinator.session is not None:
        return True
    return all(coordinator.queues[t].in_flight is None for t in coordinator.config.injected_types)


async def check_coordinator(bed: FuzzBed) -> hv_pb2.DescribeHypervisorResponse:
    """The coordinator answers, its queues hold their invariants, and DescribeHypervisor
    agrees with them; the in-flight/session rule is given a moment after a detach."""
    check_queues(bed)
    await bed.flow.watch.until(lambda: session_consistent(bed), within=5.0)
    flow = bed.flow
    reply = await flow.hv.DescribeHypervisor(
        hv_pb2.DescribeHypervisorRequest(), metadata=flow.md(OPERATOR), timeout=CALL_TIMEOUT
    )
    assert sorted(link.pcpu for link in reply.pcpus) == bed.pcpus
    for type_queue in reply.queues:
        queue = flow.coordinator.queues[type_queue.type]
        assert type_queue.depth == len(queue)
        assert type_queue.HasField("in_flight") == (queue.in_flight is not None)
    return reply


async def check_alive_and_conserved(bed: FuzzBed) -> None:
    await check_conservation(bed)
    await check_coordinator(bed)


# --- the checkers refuse what they must ------------------------------------------------


class _FakeError(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode, details: list[Any]) -> None:
        status = status_pb2.Status(code=code.value[0], message="m", details=details)
        trailing = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
        super().__init__(code, grpc.aio.Metadata(), trailing, details="m")


def _packed(reason: str) -> any_pb2.Any:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN))
    return detail


def test_check_refusal_accepts_one_canonical_error_info() -> None:
    info = check_refusal(_FakeError(grpc.StatusCode.NOT_FOUND, [_packed("NO_SUCH_THING")]))
    assert info.reason == "NO_SUCH_THING"


def test_check_refusal_rejects_what_the_contract_forbids() -> None:
    bad = [
        _FakeError(grpc.StatusCode.INTERNAL, [_packed("BOOM")]),
        _FakeError(grpc.StatusCode.UNKNOWN, [_packed("BOOM")]),
        _FakeError(grpc.StatusCode.INVALID_ARGUMENT, []),
        _FakeError(grpc.StatusCode.INVALID_ARGUMENT, [_packed("A"), _packed("B")]),
        _FakeError(grpc.StatusCode.INVALID_ARGUMENT, [_packed("not_snake")]),
        _FakeError(grpc.StatusCode.INVALID_ARGUMENT, [_packed("")]),
    ]
    for error in bad:
        try:
            check_refusal(error)
        except AssertionError:
            continue
        raise AssertionError(f"accepted {error.code()} {error.trailing_metadata()}")
