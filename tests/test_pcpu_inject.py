"""SalService's InjectError: batches, count zero, paced storms on the clock, and bad
injections refused.
"""

from __future__ import annotations

import asyncio
import math

import grpc
import pytest
from pcpu_service_helpers import (
    CMC,
    CPE,
    Pcpu,
    PcpuFactory,
)
from pcpu_service_helpers import make_pcpu as make_pcpu
from pcpu_service_helpers import pcpu as pcpu
from refusals import refused

from xenmca.record.v1 import record_pb2
from xenmca.rpc.events import Event
from xenmca.sal.v1 import sal_service_pb2 as sal


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
