"""Shared pieces of the fuzz tests (test_fuzz_*.py): a bed on its own event loop and the
checks every answer and every state must pass (the strategies are in fuzz_strategies.py).

Hypothesis runs examples synchronously, so each fuzz test starts one in-process bed (real
pCPU servers and the coordinator on port 0) on an ``asyncio.Runner`` and drives every
example through ``LoopBed.run``. The only tests here check the checkers themselves.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import grpc
from flow_harness import EventWatch, FlowBed
from fuzz_strategies import RECORD_TYPES, T
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
from xenmca.rpc.identity import OPERATOR
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.testing.flow import attached_coordinator, make_tokens, running_pcpus
from xenmca.xen.queues import State

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
