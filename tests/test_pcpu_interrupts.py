"""SalService's WatchInterrupts: fan-out to every watcher, watchers leaving, masked lines,
overflowed records, the server stopping.
"""

from __future__ import annotations

import asyncio

import grpc
from pcpu_service_helpers import (
    CMC,
    CPE,
    Pcpu,
    PcpuFactory,
    until,
)
from pcpu_service_helpers import make_pcpu as make_pcpu
from pcpu_service_helpers import pcpu as pcpu

from xenmca.sal.v1 import sal_service_pb2 as sal


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
