"""Paced injections (issue 12 item 4): ListInjections and CancelInjection.

A paced InjectError holds one of a pCPU's MAX_PACED_INJECTIONS slots until it ends; the
operator can list the running injections and cancel one. Real servers on port 0 with a
fake clock where timing matters. The bounds on rates and durations are in
test_paced_limits.py, `xenmca inject --list/--cancel` in test_paced_injections_cli.py.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from paced_injections_helpers import (
    CMC,
    CPE,
    Pcpu,
    PcpuFactory,
)
from paced_injections_helpers import make_pcpu as make_pcpu
from paced_injections_helpers import pcpu as pcpu
from refusals import refused

from xenmca.pcpu.firmware import MAX_PACED_INJECTIONS
from xenmca.pcpu.model import LoadedState
from xenmca.pcpu.store import RecordStore, StoreChange
from xenmca.record.v1 import record_pb2
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.identity import DOM0, XEN, call_metadata
from xenmca.sal.v1 import sal_service_pb2 as sal

# --- ListInjections -------------------------------------------------------------------


async def test_list_shows_running_injections_with_progress(pcpu: Pcpu) -> None:
    wall_at_start = pcpu.clock.wall()  # the firmware stamps from its (fake) clock
    first = await pcpu.inject(1000, 8.0, severity=record_pb2.SEVERITY_FATAL)
    second = await pcpu.inject(50, 4.0, CPE)
    immediate = await pcpu.inject(5, 0.0)
    assert (first.injection_id, second.injection_id, immediate.injection_id) == (1, 2, 0)
    await pcpu.until_events("records_created", 3)  # the first record of each is due at once

    listed = await pcpu.listed()
    assert [(i.injection_id, i.type, i.count, i.created, i.rate_per_second) for i in listed] == [
        (1, CMC, 1000, 1, 8.0),
        (2, CPE, 50, 1, 4.0),
    ]
    assert [i.severity for i in listed] == [
        record_pb2.SEVERITY_FATAL,
        record_pb2.SEVERITY_CORRECTED,
    ]
    for injection in listed:
        started = injection.started_at.ToNanoseconds() / 1e9
        assert started == pytest.approx(wall_at_start, abs=1e-3)

    await pcpu.clock.advance(2.0)  # 16 more at 8/s, 8 more at 4/s
    progress = {i.injection_id: (i.created, i.stored, i.overflowed) for i in await pcpu.listed()}
    assert progress == {1: (17, 17, 0), 2: (9, 9, 0)}
    assert (await pcpu.state(CMC)).created == 5 + 17 and (await pcpu.state(CPE)).created == 9

    await pcpu.clock.advance(20.0)  # the CPE one ends (50 at 4/s), the CMC one does not
    assert [i.injection_id for i in await pcpu.listed()] == [1]
    (finished,) = pcpu.kinds("injection_finished")
    assert (finished["injection_id"], finished["created"], finished["complete"]) == (2, 50, True)
    started = [e["injection_id"] for e in pcpu.kinds("injection_started")]
    assert started == [1, 2]


# --- CancelInjection ------------------------------------------------------------------


async def test_cancel_stops_one_injection_and_frees_its_slot(make_pcpu: PcpuFactory) -> None:
    pcpu = await make_pcpu(capacity=5)
    others = [await pcpu.inject(10, 0.01) for _ in range(MAX_PACED_INJECTIONS - 1)]
    target = await pcpu.inject(100, 8.0, CPE)
    await refused(
        pcpu.inject(1, 1.0), grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_PACED_INJECTIONS"
    )
    await pcpu.until_events("records_created", MAX_PACED_INJECTIONS)
    await pcpu.clock.advance(1.25)  # the CPE storm has made 11 records: 5 stored, 6 overflowed

    done = await pcpu.cancel(target.injection_id)
    assert (done.injection_id, done.type, done.count) == (target.injection_id, CPE, 100)
    assert (done.created, done.stored, done.overflowed) == (11, 5, 6)
    (cancelled,) = pcpu.kinds("injection_cancelled")
    assert cancelled["injection_id"] == target.injection_id and cancelled["created"] == 11
    assert target.injection_id not in {i.injection_id for i in await pcpu.listed()}
    assert len(await pcpu.listed()) == MAX_PACED_INJECTIONS - 1

    await pcpu.clock.advance(60.0)  # no record after the cancel
    state = await pcpu.state(CPE)
    assert (state.created, state.overflowed, state.pending) == (11, 6, 5)
    assert state.created == state.pending + state.overflowed
    ended = [e["injection_id"] for e in pcpu.kinds("injection_finished")]
    assert target.injection_id not in ended

    replacement = await pcpu.inject(1, 1.0)  # the slot is free again
    assert replacement.injection_id == MAX_PACED_INJECTIONS + 1
    await refused(
        pcpu.cancel(target.injection_id), grpc.StatusCode.NOT_FOUND, "INJECTION_NOT_FOUND"
    )
    await refused(pcpu.cancel(0), grpc.StatusCode.INVALID_ARGUMENT, "INJECTION_ID_REQUIRED")
    await refused(pcpu.cancel(10**6), grpc.StatusCode.NOT_FOUND, "INJECTION_NOT_FOUND")
    assert {o.injection_id for o in others} == {i.injection_id for i in await pcpu.listed()} - {
        replacement.injection_id
    }


class GatedBackend:
    """A durable store backend whose commits wait until the test releases them."""

    def __init__(self) -> None:
        self.committing = asyncio.Event()
        self.release = asyncio.Event()

    def load(self) -> LoadedState:
        return LoadedState()

    async def commit(self, change: StoreChange) -> None:
        self.committing.set()
        await self.release.wait()


async def test_a_cancel_waits_for_the_batch_being_committed(make_pcpu: PcpuFactory) -> None:
    backend = GatedBackend()
    pcpu = await make_pcpu(store=RecordStore(3, backend=backend))
    firmware = pcpu.server.firmware
    started = await pcpu.inject(100, 8.0)
    await backend.committing.wait()  # the first batch is being committed

    cancelling = asyncio.ensure_future(firmware.cancel_paced(started.injection_id))
    await asyncio.sleep(0)  # let it ask; it must wait for the batch
    assert not cancelling.done() and firmware.injections() == []
    backend.release.set()
    done = await cancelling
    # The batch is whole: stored, its interrupt raised, its event emitted, and counted.
    assert (done.created, done.stored) == (1, 1)
    state = await pcpu.state()
    assert (state.created, state.pending, state.interrupts_raised) == (1, 1, 1)
    kinds = [e["kind"] for e in pcpu.events if e["kind"].startswith(("records", "injection"))]
    assert kinds == ["injection_started", "records_created", "injection_cancelled"]
    await pcpu.clock.advance(10.0)
    assert (await pcpu.state()).created == 1


async def test_only_the_operator_lists_and_cancels(pcpu: Pcpu) -> None:
    started = await pcpu.inject(10, 1.0)
    for identity in (DOM0, XEN, None):
        metadata = call_metadata(pcpu.tokens.token_for(identity) if identity else None)
        code = grpc.StatusCode.PERMISSION_DENIED if identity else grpc.StatusCode.UNAUTHENTICATED
        for call in (
            pcpu.stub.ListInjections(sal.ListInjectionsRequest(), metadata=metadata),
            pcpu.stub.CancelInjection(
                sal.CancelInjectionRequest(injection_id=started.injection_id), metadata=metadata
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call
            assert raised.value.code() == code
            assert error_info_of(raised.value) is not None
    assert [i.injection_id for i in await pcpu.listed()] == [started.injection_id]
