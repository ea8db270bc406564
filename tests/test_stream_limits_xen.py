"""Server streams are bounded (issue 12 item 3), the coordinator's side: AttachDom0's
bounded outbox, and the coordinator's recovery when its own interrupt stream is cut off.

Real servers on 127.0.0.1 port 0; the tests wait on events and counts, never on time.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from flow_harness import CMC, DOMU, EventWatch, ScriptedDom0, flow_bed, start_coordinator
from stream_limits_helpers import (
    TIMEOUT,
    refusal,
)

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.pcpu.server import PcpuHost
from xenmca.rpc.channels import open_channel
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook, call_metadata
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.xen.dom0_session import DEFAULT_MAX_OUTBOX, Dom0Session

# --- AttachDom0's bounded outbox ----------------------------------------------------------


def test_a_session_past_its_outbox_ends_as_lagging() -> None:
    session = Dom0Session("unit", max_outbox=3)
    for injection_id in range(1, 4):
        session.inject(hv_pb2.AttachDom0Response(type=CMC, injection_id=injection_id))
    assert session.waiting == 3 and not session.closed
    session.inject(hv_pb2.AttachDom0Response(type=CMC, injection_id=4))
    assert (session.lagging, session.closed, session.waiting) == (True, True, 0)
    session.inject(hv_pb2.AttachDom0Response(type=CMC, injection_id=5))
    assert session.waiting == 0
    assert asyncio.run(session.next_interrupt()) is None
    assert DEFAULT_MAX_OUTBOX >= 64


async def test_a_dom0_that_does_not_read_is_cut_off_and_its_entry_goes_to_the_next() -> None:
    async with flow_bed(pcpus=1) as bed:
        coordinator = bed.coordinator
        await bed.inject(0)
        await bed.watch.wait_for("entry_queued", pcpu=0)
        silent = ScriptedDom0(bed, "silent")
        await bed.watch.wait_for("injected", pcpu=0)
        session = coordinator.session
        assert session is not None
        session.max_outbox = 16
        # Interrupts dom0 never reads: gRPC's buffers fill, then the outbox, then the cut.
        most_waiting = 0
        for injection_id in range(1_000, 200_000):
            session.inject(hv_pb2.AttachDom0Response(type=CMC, injection_id=injection_id))
            most_waiting = max(most_waiting, session.waiting)
            if session.lagging:
                break
            await asyncio.sleep(0)  # let the stream send what it can
        assert session.lagging and most_waiting <= 16 and session.waiting == 0
        # Detached at once, though the stream's last write still waits for dom0 to read.
        await bed.watch.wait_for("dom0_detached", instance="silent")
        assert coordinator.session is None
        ids = []
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async with asyncio.timeout(TIMEOUT):
                async for interrupt in silent.call:
                    ids.append(interrupt.injection_id)
        assert refusal(raised.value) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "SUBSCRIBER_LAGGING")
        assert ids[0] == 1 and ids[1:] == list(range(1_000, 1_000 + len(ids) - 1))
        # The entry the silent dom0 held is delivered again to the next dom0.
        dom0 = ScriptedDom0(bed, "next")
        interrupt = await dom0.next_interrupt()
        assert interrupt.reinjected
        got = await dom0.get()
        assert got.sal_status == 0 and got.record.record_id == 1
        assert (await dom0.clear(got.record.record_id)).sal_status == 0
        assert (await bed.pending(0)).pending == 0
        await dom0.detach()


# --- the coordinator's own stream ---------------------------------------------------------


async def drain(dom0: ScriptedDom0, records: int) -> list[tuple[int, int]]:
    """Handle one virtual interrupt at a time (GET, keep, CLEAR by id) until records are read."""
    logged: list[tuple[int, int]] = []
    while len(logged) < records:
        await dom0.next_interrupt()
        got = await dom0.get()
        assert got.sal_status == 0, got
        logged.append((got.record.pcpu, got.record.record_id))
        cleared = await dom0.clear(got.record.record_id)
        assert cleared.sal_status == 0 and not cleared.already_cleared, cleared
    return logged


async def test_the_coordinator_cut_off_resubscribes_and_loses_no_record() -> None:
    async with flow_bed(pcpus=2) as bed:
        coordinator = bed.coordinator
        line = bed.host.servers[0].firmware.line
        line.max_backlog = 16
        await bed.inject(0, count=100)  # one batch, far past the backlog: cut off at once
        await bed.inject(1, count=3)
        await bed.watch.wait_for("pcpu_connected", pcpu=0, count=2)
        assert line.lagged == 1 and coordinator.links[0].connects == 2
        assert coordinator.links[1].connects == 1  # the other pCPU's stream is untouched
        assert bed.watch.matching("entry_queued", pcpu=0, why="reconcile")
        # The new stream carries interrupts again.
        after = await bed.inject(0, count=1)
        await bed.watch.wait_for("interrupt_received", pcpu=0, record_id=after.first_record_id)
        dom0 = ScriptedDom0(bed)
        logged = await drain(dom0, 104)
        await dom0.detach()
        expected = [(0, rid) for rid in range(1, 102)] + [(1, rid) for rid in range(1, 4)]
        assert sorted(logged) == expected  # each record once: none lost, none twice
        assert (await bed.pending(0)).pending == 0 and (await bed.pending(1)).pending == 0
        assert coordinator.counters.records_cleared == 104


async def test_a_20000_record_batch_does_not_cut_the_coordinator_off() -> None:
    tokens = TokenBook.generate(DOM0, OPERATOR, XEN, DOMU)
    host = PcpuHost([0], token_book=tokens, capacity=20_000)
    await host.start()
    watch = EventWatch()
    coordinator, built, _ = await start_coordinator(host.addresses, tokens, watch)
    channel = open_channel(host.addresses[0])
    try:
        await watch.wait_for("pcpu_connected")
        injected = await sal_grpc.SalServiceStub(channel).InjectError(
            sal_pb2.InjectErrorRequest(type=CMC, count=20_000),
            metadata=call_metadata(tokens.token_for(OPERATOR)),
        )
        assert injected.stored == 20_000
        await watch.until(lambda: coordinator.counters.interrupts >= 20_000, within=120)
        line = host.servers[0].firmware.line
        assert line.lagged == 0 and line.subscribers == 1
        assert coordinator.links[0].connects == 1 and coordinator.links[0].connected
        assert coordinator.counters.interrupts == 20_000
    finally:
        await channel.close()
        await built.server.stop(0)
        await coordinator.stop()
        await host.stop(grace=None)
