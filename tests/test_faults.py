"""Per-RPC fault injection on real pCPU servers: drop-reply, fail, filters, counts,
durations and delays, on unary calls and on the WatchInterrupts stream.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from faults_helpers import (
    CLEAR,
    DESCRIBE,
    SIZE,
    WATCH,
    Host,
    SignallingClock,
    injected,
)
from faults_helpers import pcpus as pcpus
from flow_harness import CMC
from google.protobuf import duration_pb2

from xenmca.fault.v1 import fault_service_pb2 as fault_pb2
from xenmca.rpc.identity import OPERATOR, XEN
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2


async def test_drop_reply_acts_then_loses_the_reply(pcpus: Host) -> None:
    # Added through pCPU 0's FaultService, for pCPU 1: the host shares one injector.
    fault_id = await pcpus.add(
        via=0,
        method="SalService.ClearStateInfo",
        pcpu=1,
        action=fault_pb2.FAULT_ACTION_DROP_REPLY,
        count=1,
    )
    first = (await pcpus.inject(1, count=2)).first_record_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pcpus.sal(1).ClearStateInfo(
            sal_pb2.ClearStateInfoRequest(type=CMC, record_id=first), metadata=pcpus.md(XEN)
        )
    assert injected(caught.value) == {
        "fault_id": fault_id,
        "action": "drop-reply",
        "method": CLEAR,
        "pcpu": "1",
    }
    state = await pcpus.cmc(1)
    assert (state.pending, state.cleared, state.oldest_record_id) == (1, 1, first + 1)
    # The retry by record id is harmless: already cleared, nothing else touched.
    again = await pcpus.sal(1).ClearStateInfo(
        sal_pb2.ClearStateInfoRequest(type=CMC, record_id=first), metadata=pcpus.md(XEN)
    )
    assert again.already_cleared and again.remaining == 1
    assert pcpus.watch.matching("fault_fired") == [
        {
            **pcpus.watch.matching("fault_fired")[0],
            "fault_id": fault_id,
            "method": CLEAR,
            "pcpu": 1,
            "action": "drop-reply",
        }
    ]


async def test_fail_answers_without_acting(pcpus: Host) -> None:
    await pcpus.add(method="SalService.ClearStateInfo", action=fault_pb2.FAULT_ACTION_FAIL)
    first = (await pcpus.inject(0)).first_record_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pcpus.sal(0).ClearStateInfo(
            sal_pb2.ClearStateInfoRequest(type=CMC, record_id=first), metadata=pcpus.md(XEN)
        )
    assert injected(caught.value)["action"] == "fail"
    state = await pcpus.cmc(0)
    assert (state.pending, state.cleared) == (1, 0)


async def test_pcpu_filter_leaves_other_pcpus_alone(pcpus: Host) -> None:
    await pcpus.add(method=DESCRIBE, pcpu=1, action=fault_pb2.FAULT_ACTION_FAIL)
    assert (await pcpus.cmc(0)).pending == 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pcpus.cmc(1)
    assert injected(caught.value)["pcpu"] == "1"
    (listed,) = (
        await pcpus.faults(1).ListFaults(fault_pb2.ListFaultsRequest(), metadata=pcpus.md(OPERATOR))
    ).faults
    assert (listed.matched, listed.fired, listed.expired) == (1, 1, False)
    assert [e["pcpu"] for e in pcpus.watch.matching("fault_fired")] == [1]


async def test_count_is_exhausted_then_calls_pass(pcpus: Host) -> None:
    await pcpus.add(method=DESCRIBE, action=fault_pb2.FAULT_ACTION_FAIL, count=2)
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError):
            await pcpus.cmc(0)
    assert (await pcpus.cmc(1)).pending == 0
    assert (await pcpus.cmc(0)).pending == 0
    listed = await pcpus.faults().ListFaults(
        fault_pb2.ListFaultsRequest(), metadata=pcpus.md(OPERATOR)
    )
    assert [(f.fired, f.expired) for f in listed.faults] == [(2, True)]


async def test_duration_window_ends_on_the_hosts_clock(pcpus: Host) -> None:
    await pcpus.add(
        method=DESCRIBE,
        action=fault_pb2.FAULT_ACTION_FAIL,
        duration=duration_pb2.Duration(seconds=30),
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await pcpus.cmc(0)
    await pcpus.clock.advance(30)
    assert (await pcpus.cmc(0)).pending == 0


async def wait_for_sleeper(clock: SignallingClock) -> None:
    async with asyncio.timeout(10):
        await clock.slept.wait()


async def test_delay_holds_the_call_until_the_delay_has_passed(pcpus: Host) -> None:
    await pcpus.add(
        method=SIZE,
        action=fault_pb2.FAULT_ACTION_DELAY,
        delay=duration_pb2.Duration(seconds=2),
        count=1,
    )
    call = asyncio.ensure_future(
        pcpus.sal(0).GetStateInfoSize(sal_pb2.GetStateInfoSizeRequest(type=CMC))
    )
    await pcpus.watch.wait_for("fault_fired", action="delay")
    await wait_for_sleeper(pcpus.clock)
    await pcpus.clock.advance(1.9)
    assert not call.done()
    await pcpus.clock.advance(0.1)
    reply = await call
    assert reply.sal_status == 0 and reply.size > 0


async def test_stream_fail_ends_it_at_the_start(pcpus: Host) -> None:
    await pcpus.add(method=WATCH, pcpu=0, action=fault_pb2.FAULT_ACTION_FAIL)
    call = pcpus.sal(0).WatchInterrupts(sal_pb2.WatchInterruptsRequest())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert injected(caught.value)["action"] == "fail"


async def test_stream_drop_reply_loses_the_first_message_and_ends(pcpus: Host) -> None:
    await pcpus.add(method=WATCH, action=fault_pb2.FAULT_ACTION_DROP_REPLY, count=1)
    # Only the coordinator ("xen") may watch a pCPU (issue 12).
    dropped = pcpus.sal(0).WatchInterrupts(sal_pb2.WatchInterruptsRequest(), metadata=pcpus.md(XEN))
    await dropped.initial_metadata()  # subscribed: the stream has started
    intact = pcpus.sal(0).WatchInterrupts(sal_pb2.WatchInterruptsRequest(), metadata=pcpus.md(XEN))
    await intact.initial_metadata()
    first = (await pcpus.inject(0)).first_record_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await dropped.read()
    assert injected(caught.value)["action"] == "drop-reply"
    assert (await intact.read()).record_id == first
    intact.cancel()


async def test_stream_delay_delays_the_start(pcpus: Host) -> None:
    await pcpus.add(
        method=WATCH, action=fault_pb2.FAULT_ACTION_DELAY, delay=duration_pb2.Duration(seconds=5)
    )
    call = pcpus.sal(0).WatchInterrupts(sal_pb2.WatchInterruptsRequest(), metadata=pcpus.md(XEN))
    metadata = asyncio.ensure_future(call.initial_metadata())
    await wait_for_sleeper(pcpus.clock)
    assert not metadata.done()
    await pcpus.clock.advance(5)
    await metadata
    first = (await pcpus.inject(0)).first_record_id
    assert (await call.read()).record_id == first
    call.cancel()
