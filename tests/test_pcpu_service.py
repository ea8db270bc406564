"""SalService through a real in-process gRPC server on port 0: GET, GET_SIZE and CLEAR,
overflow, the record type checked by every RPC, DescribePcpu, health and reflection.
"""

from __future__ import annotations

import grpc
import pytest
from pcpu_service_helpers import (
    CMC,
    CPE,
    MCA,
    Pcpu,
    PcpuFactory,
)
from pcpu_service_helpers import make_pcpu as make_pcpu
from pcpu_service_helpers import pcpu as pcpu
from refusals import refused

from xenmca.layout.codec import decode_record
from xenmca.layout.limits import max_encoded_size
from xenmca.record.v1 import record_pb2
from xenmca.rpc.channels import open_channel
from xenmca.sal.v1 import sal_service_pb2 as sal

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
