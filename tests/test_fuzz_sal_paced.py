"""Fuzzing SalService's paced injections of real pCPU servers: ListInjections and
CancelInjection, and the bounds on paced injections at absurd rates and when they overlap."""

from __future__ import annotations

import asyncio

import grpc
from fuzz_sal_helpers import INVALID_ARGUMENT, MIN_INJECT_RATE, PCPUS, auth_refusal, pcpus, stub
from fuzz_strategies import Credential, caller, mostly, record_ids
from hypothesis import strategies as st
from test_fuzz_support import (
    CALL_TIMEOUT,
    FuzzBed,
    LoopBed,
    answer,
    check_alive_and_conserved,
    check_conservation,
    end_paced_injections,
    fuzz_bed,
    run_examples,
)

from xenmca.pcpu.firmware import MAX_PACED_INJECTIONS
from xenmca.record.v1 import record_pb2
from xenmca.rpc.identity import OPERATOR
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2

# --- ListInjections / CancelInjection --------------------------------------------------


async def start_slow_injections(bed: FuzzBed, per_pcpu: int = 3) -> None:
    """A few paced injections on every pCPU that will not end during the test."""
    for pcpu in bed.pcpus:
        for _ in range(per_pcpu):
            await stub(bed, pcpu).InjectError(
                sal_pb2.InjectErrorRequest(
                    type=record_pb2.RECORD_TYPE_CMC, count=2, rate_per_second=MIN_INJECT_RATE
                ),
                metadata=bed.flow.md(OPERATOR),
            )


async def list_and_cancel(bed: FuzzBed, drawn: tuple[int, int, Credential]) -> None:
    """A running id is cancelled once (then gone from the list), 0 is INVALID_ARGUMENT,
    any other id NOT_FOUND; both RPCs are the operator's."""
    pcpu, injection_id, credential = drawn
    metadata = credential.metadata(bed.flow.tokens)
    listed = await answer(
        stub(bed, pcpu).ListInjections(
            sal_pb2.ListInjectionsRequest(), metadata=metadata, timeout=CALL_TIMEOUT
        )
    )
    refusal = auth_refusal("ListInjections", credential)
    if refusal is not None:
        assert listed.code == refusal, listed
    else:
        assert listed.ok and listed.reply.pcpu == pcpu, listed
    running = {
        i.injection_id
        for i in (
            await stub(bed, pcpu).ListInjections(
                sal_pb2.ListInjectionsRequest(), metadata=bed.flow.md(OPERATOR)
            )
        ).injections
    }
    got = await answer(
        stub(bed, pcpu).CancelInjection(
            sal_pb2.CancelInjectionRequest(injection_id=injection_id),
            metadata=metadata,
            timeout=CALL_TIMEOUT,
        )
    )
    refusal = auth_refusal("CancelInjection", credential)
    if refusal is not None:
        assert got.code == refusal, got
    elif injection_id == 0:
        assert got.refused(INVALID_ARGUMENT, "INJECTION_ID_REQUIRED"), got
    elif injection_id in running:
        assert got.ok and got.reply.injection.injection_id == injection_id, got
        done = got.reply.injection
        assert done.created == done.stored + done.overflowed <= done.count
    else:
        assert got.refused(grpc.StatusCode.NOT_FOUND, "INJECTION_NOT_FOUND"), got
    after = bed.flow.host.servers[pcpu].firmware.injections()
    expected = running - {injection_id} if got.ok else running
    assert {i.injection_id for i in after} == expected
    await check_conservation(bed)


def test_fuzz_sal_list_and_cancel_injections() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        loop.run(start_slow_injections(loop.bed))
        ids = mostly(st.integers(0, 4), record_ids)
        run_examples(loop, 60, st.tuples(pcpus, ids, caller(OPERATOR)), list_and_cancel)


async def test_paced_injections_are_bounded_even_at_absurd_rates() -> None:
    """The slowest representable rate is refused (RATE_TOO_LOW) and creates nothing; the
    slowest accepted one is bounded by the limit of paced injections per pCPU: one more
    is RESOURCE_EXHAUSTED with an ErrorInfo, and the pCPU answers throughout."""
    async with fuzz_bed(pcpus=1) as bed:
        absurd = sal_pb2.InjectErrorRequest(
            type=record_pb2.RECORD_TYPE_CPE, count=2, rate_per_second=5e-324
        )
        got = await answer(
            stub(bed, 0).InjectError(absurd, metadata=bed.flow.md(OPERATOR), timeout=5)
        )
        assert got.refused(INVALID_ARGUMENT, "RATE_TOO_LOW"), got
        request = sal_pb2.InjectErrorRequest(
            type=record_pb2.RECORD_TYPE_CPE, count=2, rate_per_second=MIN_INJECT_RATE
        )
        for _ in range(MAX_PACED_INJECTIONS):
            got = await answer(
                stub(bed, 0).InjectError(request, metadata=bed.flow.md(OPERATOR), timeout=5)
            )
            assert got.ok and got.reply.accepted == 2, got
        one_more = await answer(
            stub(bed, 0).InjectError(request, metadata=bed.flow.md(OPERATOR), timeout=5)
        )
        assert one_more.refused(grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_PACED_INJECTIONS")
        firmware = bed.flow.host.servers[0].firmware
        await bed.flow.watch.until(
            lambda: (
                firmware.store.state(record_pb2.RECORD_TYPE_CPE).counters.created
                == MAX_PACED_INJECTIONS
            )
        )
        await check_alive_and_conserved(bed)


async def test_a_pcpu_with_overlapping_paced_injections_stops() -> None:
    # Found by fuzzing: start_paced once rebound its task set, so a finished task
    # stayed in it and close() waited forever.
    async with fuzz_bed(pcpus=1) as bed:
        firmware = bed.flow.host.servers[0].firmware
        slow = sal_pb2.InjectErrorRequest(
            type=record_pb2.RECORD_TYPE_CMC, count=2, rate_per_second=0.001
        )
        try:
            for _ in range(2):  # the second starts while the first still runs
                await stub(bed, 0).InjectError(slow, metadata=bed.flow.md(OPERATOR))
            assert firmware.paced_injections == 2
            async with asyncio.timeout(2):
                await firmware.close()
        finally:
            await end_paced_injections(bed.flow.host)  # let the bed stop either way
