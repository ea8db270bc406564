"""SalService through a real in-process gRPC server on port 0: every RPC, good and bad input."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
import pytest

from xenmca.layout.codec import decode_record
from xenmca.layout.limits import max_encoded_size
from xenmca.pcpu.server import PcpuServer, create_server
from xenmca.record.v1 import record_pb2
from xenmca.rpc.channels import open_channel
from xenmca.rpc.clock import FakeClock
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.events import Event, EventLog
from xenmca.sal.v1 import sal_service_pb2 as sal
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

CMC = record_pb2.RECORD_TYPE_CMC
CPE = record_pb2.RECORD_TYPE_CPE
MCA = record_pb2.RECORD_TYPE_MCA


@dataclass
class Pcpu:
    server: PcpuServer
    stub: sal_grpc.SalServiceStub
    events: list[Event]
    log: EventLog
    clock: FakeClock

    async def describe(self, record_type: int = CMC) -> sal.RecordTypeState:
        reply = await self.stub.DescribePcpu(sal.DescribePcpuRequest())
        return next(t for t in reply.types if t.type == record_type)

    async def inject(
        self, count: int = 1, record_type: int = CMC, **kw: object
    ) -> sal.InjectErrorResponse:
        return await self.stub.InjectError(
            sal.InjectErrorRequest(type=record_type, count=count, **kw)  # type: ignore[arg-type]
        )


PcpuFactory = Callable[..., Awaitable[Pcpu]]


@pytest.fixture
async def make_pcpu() -> AsyncIterator[PcpuFactory]:
    started: list[tuple[PcpuServer, grpc.aio.Channel]] = []

    async def make(pcpu: int = 5, **options: object) -> Pcpu:
        events = EventLog("pcpu-test")
        seen: list[Event] = []
        events.subscribe(seen.append)
        clock = FakeClock()
        server, port = create_server(
            "127.0.0.1:0",
            pcpu,
            events=events,
            clock=clock,
            **options,  # type: ignore[arg-type]
        )
        await server.start()
        channel = open_channel(f"127.0.0.1:{port}")
        started.append((server, channel))
        return Pcpu(server, sal_grpc.SalServiceStub(channel), seen, events, clock)

    yield make
    for server, channel in started:
        await channel.close()
        await server.stop(None)


@pytest.fixture
async def pcpu(make_pcpu: PcpuFactory) -> Pcpu:
    return await make_pcpu()


async def refused(call: Awaitable[object], code: grpc.StatusCode, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == code, raised.value.details()
    info = error_info_of(raised.value)
    assert info is not None and info.reason == reason, info
    assert info.domain == "xenmca.dev"


# --- GET / GET_SIZE / CLEAR -----------------------------------------------------


async def test_get_state_info_returns_oldest_without_removing(pcpu: Pcpu) -> None:
    empty = await pcpu.stub.GetStateInfo(sal.GetStateInfoRequest(type=CMC))
    assert empty.sal_status == -5 and not empty.HasField("record")
    injected = await pcpu.inject(3)
    assert (injected.first_record_id, injected.last_record_id, injected.stored) == (1, 3, 3)
    for _ in range(2):
        reply = await pcpu.stub.GetStateInfo(sal.GetStateInfoRequest(type=CMC))
        assert reply.sal_status == 0
        assert reply.record.record_id == 1 and reply.record.pcpu == 5
        assert reply.record.type == CMC
        assert reply.record.severity == record_pb2.SEVERITY_CORRECTED
    record = reply.record
    decoded = decode_record(record.raw)
    assert decoded.record_id == 1 and decoded.severity == 2
    assert record.sections[0].WhichOneof("body") == "processor"
    assert record.created_at.seconds > 0 and record.created_monotonic_ns > 0
    assert (await pcpu.describe()).pending == 3


async def test_default_sections_are_seeded_by_pcpu_and_record_id(make_pcpu: PcpuFactory) -> None:
    first, second = await make_pcpu(pcpu=1), await make_pcpu(pcpu=1)
    other = await make_pcpu(pcpu=2)
    for target in (first, second, other):
        await target.inject(2, CPE)
    raws = []
    for target in (first, second, other):
        reply = await target.stub.GetStateInfo(sal.GetStateInfoRequest(type=CPE))
        assert reply.record.sections[0].WhichOneof("body") == "platform_memory"
        raws.append(reply.record.sections[0])
    assert raws[0] == raws[1] and raws[0] != raws[2]


async def test_get_state_info_size_is_the_layout_maximum(pcpu: Pcpu) -> None:
    for record_type in (MCA, record_pb2.RECORD_TYPE_INIT, CMC, CPE):
        reply = await pcpu.stub.GetStateInfoSize(sal.GetStateInfoSizeRequest(type=record_type))
        assert reply.sal_status == 0 and reply.size == max_encoded_size(record_type - 1)
    assert (await pcpu.describe()).max_record_size == max_encoded_size(2)


async def test_clear_oldest_then_nothing_left(pcpu: Pcpu) -> None:
    await pcpu.inject(2)
    first = await pcpu.stub.ClearStateInfo(sal.ClearStateInfoRequest(type=CMC))
    assert (first.sal_status, first.cleared_record_id, first.remaining) == (0, 1, 1)
    assert not first.already_cleared
    current = await pcpu.stub.GetStateInfo(sal.GetStateInfoRequest(type=CMC))
    assert current.record.record_id == 2
    second = await pcpu.stub.ClearStateInfo(sal.ClearStateInfoRequest(type=CMC))
    assert (second.cleared_record_id, second.remaining) == (2, 0)
    none = await pcpu.stub.ClearStateInfo(sal.ClearStateInfoRequest(type=CMC))
    assert none.sal_status == -5 and none.cleared_record_id == 0
    state = await pcpu.describe()
    assert (state.created, state.cleared, state.pending) == (2, 2, 0)


async def test_clear_by_id_clears_exactly_that_record_and_is_idempotent(pcpu: Pcpu) -> None:
    await pcpu.inject(3)
    middle = await pcpu.stub.ClearStateInfo(sal.ClearStateInfoRequest(type=CMC, record_id=2))
    assert (middle.sal_status, middle.cleared_record_id, middle.already_cleared) == (0, 2, False)
    assert middle.remaining == 2
    again = await pcpu.stub.ClearStateInfo(sal.ClearStateInfoRequest(type=CMC, record_id=2))
    assert (again.sal_status, again.cleared_record_id, again.already_cleared) == (0, 2, True)
    assert again.remaining == 2
    state = await pcpu.describe()
    assert (state.pending, state.cleared, state.oldest_record_id, state.newest_record_id) == (
        2,
        1,
        1,
        3,
    )
    current = await pcpu.stub.GetStateInfo(sal.GetStateInfoRequest(type=CMC))
    assert current.record.record_id == 1
    kinds = [(e["kind"], e.get("already_cleared")) for e in pcpu.events]
    assert kinds.count(("record_cleared", False)) == 1
    assert kinds.count(("record_cleared", True)) == 1


async def test_clear_of_a_record_never_created_is_refused(pcpu: Pcpu) -> None:
    await pcpu.inject(2)
    for record_id in (0, 3, 2**63):
        await refused(
            pcpu.stub.ClearStateInfo(sal.ClearStateInfoRequest(type=CMC, record_id=record_id)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "UNKNOWN_RECORD_ID",
        )
    assert (await pcpu.describe()).pending == 2


async def test_clear_by_id_under_the_wrong_type_is_refused(pcpu: Pcpu) -> None:
    await pcpu.inject(1, CMC)
    await refused(
        pcpu.stub.ClearStateInfo(sal.ClearStateInfoRequest(type=CPE, record_id=1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "RECORD_TYPE_MISMATCH",
    )
    assert (await pcpu.describe()).pending == 1


# --- overflow --------------------------------------------------------------------


async def test_overflow_is_counted_and_flags_the_newest_pending_record(
    make_pcpu: PcpuFactory,
) -> None:
    pcpu = await make_pcpu(capacity=3)
    reply = await pcpu.inject(5)
    assert (reply.accepted, reply.stored, reply.overflowed) == (5, 3, 2)
    assert (reply.first_record_id, reply.last_record_id) == (1, 3)
    state = await pcpu.describe()
    assert (state.pending, state.capacity, state.created, state.overflowed) == (3, 3, 5, 2)
    assert state.interrupts_raised == 3 and state.newest_record_id == 3
    flags = []
    for _ in range(3):
        got = await pcpu.stub.GetStateInfo(sal.GetStateInfoRequest(type=CMC))
        flags.append((got.record.record_id, got.record.overflow))
        await pcpu.stub.ClearStateInfo(
            sal.ClearStateInfoRequest(type=CMC, record_id=got.record.record_id)
        )
    assert flags == [(1, False), (2, False), (3, True)]
    overflow = [e for e in pcpu.events if e["kind"] == "overflow"]
    assert len(overflow) == 1 and overflow[0]["count"] == 2
    assert overflow[0]["flagged_record_id"] == 3


async def test_overflow_of_a_full_store_flags_the_existing_newest(make_pcpu: PcpuFactory) -> None:
    pcpu = await make_pcpu(capacity=2)
    await pcpu.inject(2)
    reply = await pcpu.inject(4)
    assert (reply.stored, reply.overflowed, reply.first_record_id, reply.last_record_id) == (
        0,
        4,
        0,
        0,
    )
    await pcpu.stub.ClearStateInfo(sal.ClearStateInfoRequest(type=CMC))
    newest = await pcpu.stub.GetStateInfo(sal.GetStateInfoRequest(type=CMC))
    assert newest.record.record_id == 2 and newest.record.overflow
    state = await pcpu.describe()
    assert (state.created, state.overflowed, state.cleared, state.pending) == (6, 4, 1, 1)
    # Conservation: created = pending + cleared + overflowed.
    assert state.created == state.pending + state.cleared + state.overflowed
    describe = await pcpu.stub.DescribePcpu(sal.DescribePcpuRequest())
    assert describe.next_record_id == 3


# --- interrupts -------------------------------------------------------------------


async def watch(pcpu: Pcpu) -> grpc.aio.UnaryStreamCall:
    call = pcpu.stub.WatchInterrupts(sal.WatchInterruptsRequest())
    await call.initial_metadata()  # the subscription is registered
    return call


async def next_interrupts(call: grpc.aio.UnaryStreamCall, n: int) -> list[tuple[int, int]]:
    got = []
    for _ in range(n):
        message = await asyncio.wait_for(call.read(), timeout=5)
        assert message is not grpc.aio.EOF
        got.append((message.type, message.record_id))
    return got


async def test_interrupts_fan_out_to_every_watcher(pcpu: Pcpu) -> None:
    first, second = await watch(pcpu), await watch(pcpu)
    await pcpu.inject(2, CMC)
    await pcpu.inject(1, CPE)
    expected = [(CMC, 1), (CMC, 2), (CPE, 3)]
    assert await next_interrupts(first, 3) == expected
    assert await next_interrupts(second, 3) == expected
    first.cancel()
    await pcpu.inject(1, CMC)
    assert await next_interrupts(second, 1) == [(CMC, 4)]
    assert (await pcpu.describe()).interrupts_raised == 3
    second.cancel()


async def test_watcher_that_leaves_is_removed(pcpu: Pcpu) -> None:
    line = pcpu.server.firmware.line
    call = await watch(pcpu)
    assert line.subscribers == 1
    call.cancel()
    await until(lambda: line.subscribers == 0)


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Poll a condition that has no event of its own (the server noticing a cancelled call)."""

    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 - gRPC offers no hook for this
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), within)


async def test_masked_line_stores_records_without_interrupts(pcpu: Pcpu) -> None:
    call = await watch(pcpu)
    mask = await pcpu.stub.SetInterruptMask(sal.SetInterruptMaskRequest(type=CMC, masked=True))
    assert (mask.previously_masked, mask.pending) == (False, 0)
    await pcpu.inject(3, CMC)
    await pcpu.inject(1, CPE)  # another line still raises
    assert await next_interrupts(call, 1) == [(CPE, 4)]
    state = await pcpu.describe(CMC)
    assert (state.masked, state.pending, state.interrupts_raised) == (True, 3, 0)
    unmask = await pcpu.stub.SetInterruptMask(sal.SetInterruptMaskRequest(type=CMC, masked=False))
    assert (unmask.previously_masked, unmask.pending) == (True, 3)
    await pcpu.inject(1, CMC)
    assert await next_interrupts(call, 1) == [(CMC, 5)]
    assert not (await pcpu.describe(CMC)).masked
    masks = [e for e in pcpu.events if e["kind"] == "mask_changed"]
    assert [m["masked"] for m in masks] == [True, False]
    call.cancel()


async def test_no_interrupt_for_an_overflowed_record(make_pcpu: PcpuFactory) -> None:
    pcpu = await make_pcpu(capacity=1)
    call = await watch(pcpu)
    await pcpu.inject(3)
    await pcpu.inject(1, CPE)  # a marker: interrupts arrive in order
    assert await next_interrupts(call, 2) == [(CMC, 1), (CPE, 2)]
    call.cancel()


async def test_stopping_the_server_ends_watch_streams(make_pcpu: PcpuFactory) -> None:
    pcpu = await make_pcpu()
    call = await watch(pcpu)
    await pcpu.server.stop(grace=5)
    assert await asyncio.wait_for(call.read(), timeout=5) is grpc.aio.EOF
    assert await call.code() == grpc.StatusCode.OK


# --- InjectError ------------------------------------------------------------------


async def test_inject_one_batch_is_one_event(pcpu: Pcpu) -> None:
    reply = await pcpu.inject(
        1000, CPE, severity=record_pb2.SEVERITY_FATAL, sections=[_memory_section()]
    )
    assert (reply.accepted, reply.stored, reply.overflowed) == (1000, 256, 744)
    created = [e for e in pcpu.events if e["kind"] == "records_created"]
    assert len(created) == 1
    event = created[0]
    assert (event["pcpu"], event["type"], event["count"], event["stored"]) == (5, "CPE", 1000, 256)
    assert (event["first_record_id"], event["last_record_id"], event["overflowed"]) == (1, 256, 744)
    got = await pcpu.stub.GetStateInfo(sal.GetStateInfoRequest(type=CPE))
    assert got.record.severity == record_pb2.SEVERITY_FATAL
    assert got.record.sections[0].platform_memory.node == 7


async def test_count_zero_means_one(pcpu: Pcpu) -> None:
    reply = await pcpu.inject(0)
    assert (reply.accepted, reply.stored, reply.first_record_id) == (1, 1, 1)


async def test_paced_storm_follows_the_clock(make_pcpu: PcpuFactory) -> None:
    pcpu = await make_pcpu(capacity=10_000)
    firmware = pcpu.server.firmware
    reply = await pcpu.inject(500, rate_per_second=1000.0)
    assert (reply.accepted, reply.stored, reply.first_record_id) == (500, 0, 0)
    await _until_events(pcpu, "records_created", 1)
    assert (await pcpu.describe()).created == 1  # the first record is due at once
    await pcpu.clock.advance(0.105)
    assert (await pcpu.describe()).created == 101
    await pcpu.clock.advance(0.4)
    await firmware.wait_paced()
    state = await pcpu.describe()
    assert (state.created, state.pending) == (500, 500)
    batches = [e for e in pcpu.events if e["kind"] == "records_created"]
    assert sum(b["count"] for b in batches) == 500
    assert 40 <= len(batches) <= 52  # one batch per 10 ms tick, not one per record
    finished = [e for e in pcpu.events if e["kind"] == "injection_finished"]
    assert finished[0]["complete"] and finished[0]["created"] == 500
    assert (await pcpu.describe()).interrupts_raised == 500


async def test_stop_cancels_a_paced_storm(make_pcpu: PcpuFactory) -> None:
    pcpu = await make_pcpu()
    await pcpu.inject(86_400, rate_per_second=1.0)  # a day: the longest allowed
    await _until_events(pcpu, "records_created", 1)
    await pcpu.server.stop(grace=None)
    assert pcpu.server.firmware.paced_injections == 0
    finished = [e for e in pcpu.events if e["kind"] == "injection_finished"]
    assert finished[0]["created"] == 1 and not finished[0]["complete"]


async def _until_events(pcpu: Pcpu, kind: str, n: int) -> None:
    """Wait until the pCPU has emitted n events of kind."""
    reached = asyncio.Event()

    def check(_: Event | None = None) -> None:
        if sum(1 for e in pcpu.events if e["kind"] == kind) >= n:
            reached.set()

    unsubscribe = pcpu.log.subscribe(check)
    try:
        check()
        await asyncio.wait_for(reached.wait(), 5)
    finally:
        unsubscribe()


def _memory_section(**fields: object) -> record_pb2.Section:
    values: dict[str, object] = {"node": 7, "physical_addr": 0x1000, **fields}
    body = record_pb2.MemorySection(**values)  # type: ignore[arg-type]
    return record_pb2.Section(error_recovery_info=0x81, platform_memory=body)


BAD_INJECTIONS = [
    ({"type": record_pb2.RECORD_TYPE_UNSPECIFIED}, "INVALID_RECORD_TYPE"),
    ({"type": 99}, "INVALID_RECORD_TYPE"),
    ({"type": CMC, "severity": 42}, "INVALID_SEVERITY"),
    ({"type": CMC, "count": 1_000_001}, "COUNT_OUT_OF_RANGE"),
    ({"type": CMC, "count": 2**32 - 1}, "COUNT_OUT_OF_RANGE"),
    ({"type": CMC, "rate_per_second": -1.0}, "RATE_OUT_OF_RANGE"),
    ({"type": CMC, "rate_per_second": math.nan}, "RATE_OUT_OF_RANGE"),
    ({"type": CMC, "rate_per_second": math.inf}, "RATE_OUT_OF_RANGE"),
    ({"type": CMC, "rate_per_second": 1e7}, "RATE_OUT_OF_RANGE"),
    ({"type": CMC, "rate_per_second": 1e-300}, "RATE_TOO_LOW"),
    ({"type": CMC, "rate_per_second": 0.000999}, "RATE_TOO_LOW"),
    ({"type": CMC, "count": 86_401, "rate_per_second": 1.0}, "INJECTION_TOO_LONG"),
    ({"type": CMC, "count": 1_000_000, "rate_per_second": 1.0}, "INJECTION_TOO_LONG"),
    ({"type": CMC, "sections": [_memory_section()] * 9}, "TOO_MANY_SECTIONS"),
    ({"type": CMC, "sections": [record_pb2.Section()]}, "INVALID_SECTION"),
    ({"type": CMC, "sections": [_memory_section(node=70_000)]}, "INVALID_SECTION"),
    ({"type": CMC, "sections": [_memory_section(oem_id=b"short")]}, "INVALID_SECTION"),
    ({"type": CMC, "sections": [_memory_section(oem_data=bytes(5000))]}, "INVALID_SECTION"),
]


@pytest.mark.parametrize(("fields", "reason"), BAD_INJECTIONS)
async def test_bad_injection_is_refused_and_changes_nothing(
    pcpu: Pcpu, fields: dict[str, object], reason: str
) -> None:
    await pcpu.inject(1)
    before = await pcpu.stub.DescribePcpu(sal.DescribePcpuRequest())
    request = sal.InjectErrorRequest(**fields)  # type: ignore[arg-type]
    await refused(pcpu.stub.InjectError(request), grpc.StatusCode.INVALID_ARGUMENT, reason)
    assert await pcpu.stub.DescribePcpu(sal.DescribePcpuRequest()) == before
    assert pcpu.server.firmware.paced_injections == 0


@pytest.mark.parametrize("bad_type", [record_pb2.RECORD_TYPE_UNSPECIFIED, 5, 1000])
async def test_every_rpc_checks_the_record_type(pcpu: Pcpu, bad_type: int) -> None:
    await pcpu.inject(1)
    before = await pcpu.stub.DescribePcpu(sal.DescribePcpuRequest())
    calls = [
        pcpu.stub.GetStateInfo(sal.GetStateInfoRequest(type=bad_type)),  # type: ignore[arg-type]
        pcpu.stub.GetStateInfoSize(sal.GetStateInfoSizeRequest(type=bad_type)),  # type: ignore[arg-type]
        pcpu.stub.ClearStateInfo(sal.ClearStateInfoRequest(type=bad_type)),  # type: ignore[arg-type]
        pcpu.stub.ClearStateInfo(sal.ClearStateInfoRequest(type=bad_type, record_id=1)),  # type: ignore[arg-type]
        pcpu.stub.SetInterruptMask(sal.SetInterruptMaskRequest(type=bad_type, masked=True)),  # type: ignore[arg-type]
    ]
    for call in calls:
        await refused(call, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RECORD_TYPE")
    assert await pcpu.stub.DescribePcpu(sal.DescribePcpuRequest()) == before


async def test_describe_pcpu_reports_every_type(pcpu: Pcpu) -> None:
    await pcpu.inject(2, CMC)
    await pcpu.inject(1, CPE)
    reply = await pcpu.stub.DescribePcpu(sal.DescribePcpuRequest())
    assert reply.pcpu == 5 and reply.next_record_id == 4 and not reply.durable
    assert [t.type for t in reply.types] == [MCA, record_pb2.RECORD_TYPE_INIT, CMC, CPE]
    by_type = {t.type: t for t in reply.types}
    assert (by_type[CMC].pending, by_type[CMC].oldest_record_id, by_type[CMC].newest_record_id) == (
        2,
        1,
        2,
    )
    assert (by_type[CPE].pending, by_type[CPE].oldest_record_id) == (1, 3)
    assert by_type[MCA].pending == 0 and by_type[MCA].capacity == 256


async def test_health_and_reflection_are_served(pcpu: Pcpu) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with open_channel(pcpu.server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(
            health_pb2.HealthCheckRequest(service="xenmca.sal.v1.SalService")
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
