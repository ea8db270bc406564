"""A virtual interrupt raised during one of dom0's trapped SAL calls is sent after that
call's reply, as Xen/ia64 delivers a pending event on the way back to the guest
(ia64_leave_kernel in linux-xen/entry.S calls reflect_event after the hypercall).

The session's hold is checked on its own, then on the wire: a real coordinator on port
0, and the order in which a scripted dom0 sees a CLEAR's reply and the next interrupt.
"""

from __future__ import annotations

import asyncio

import pytest
from flow_harness import CMC, ScriptedDom0, flow_bed

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.xen.dom0_session import Dom0Session
from xenmca.xen.service import HypervisorServicer


def _virq(injection_id: int) -> hv_pb2.AttachDom0Response:
    return hv_pb2.AttachDom0Response(type=CMC, injection_id=injection_id)


async def test_interrupts_raised_while_held_wait_for_the_last_hold_to_end() -> None:
    session = Dom0Session("unit")
    reader = asyncio.create_task(session.next_interrupt())
    with session.held():
        with session.held():  # dom0's CMC and CPE handlers trap at once
            session.inject(_virq(1))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not reader.done() and session.waiting == 1
    reply = await asyncio.wait_for(reader, 5)
    assert reply.injection_id == 1 and session.waiting == 0


async def test_a_held_session_that_closes_still_hands_out_what_it_holds() -> None:
    session = Dom0Session("unit")
    reader = asyncio.create_task(session.next_interrupt())
    with session.held():
        session.inject(_virq(7))
        session.close()  # a newer dom0 took over: the old one gets its last interrupts
        first = await asyncio.wait_for(reader, 5)
        assert first is not None and first.injection_id == 7
        assert await session.next_interrupt() is None


async def test_the_interrupt_a_clear_releases_is_handed_to_the_stream_after_its_reply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the coordinator: the CLEAR handler returns (gRPC sends its reply in that same
    step) before the AttachDom0 stream's writer takes the interrupt the CLEAR raised."""
    order: list[str] = []
    handed = Dom0Session.next_interrupt

    async def spy_next(self: Dom0Session) -> hv_pb2.AttachDom0Response | None:
        interrupt = await handed(self)
        order.append("interrupt handed")
        return interrupt

    replied = HypervisorServicer.ClearStateInfo

    async def spy_clear(self: HypervisorServicer, request: object, context: object) -> object:
        reply = await replied(self, request, context)
        order.append("clear returned")
        return reply

    monkeypatch.setattr(Dom0Session, "next_interrupt", spy_next)
    monkeypatch.setattr(HypervisorServicer, "ClearStateInfo", spy_clear)
    async with flow_bed(pcpus=1) as bed:
        await bed.inject(0, count=4)
        dom0 = ScriptedDom0(bed)
        await dom0.next_interrupt()
        for _ in range(3):
            got = await dom0.get()
            order.clear()
            assert (await dom0.clear(got.record.record_id)).sal_status == 0
            # The pCPU still has records: its entry was requeued and injected again
            # inside the CLEAR; that interrupt reaches dom0 after the reply.
            await dom0.next_interrupt()
            assert order == ["clear returned", "interrupt handed"]
