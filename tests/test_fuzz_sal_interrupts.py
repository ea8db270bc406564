"""Fuzzing SalService's interrupt RPCs of real pCPU servers: WatchInterrupts,
SetInterruptMask and DescribePcpu with arbitrary fields and credentials."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
from fuzz_sal_helpers import INVALID_ARGUMENT, PCPUS, auth_refusal, pcpus, record_types, seed, stub
from fuzz_strategies import RECORD_TYPES, Credential, caller, credentials, unknown_fields
from hypothesis import strategies as st
from test_fuzz_support import (
    CALL_TIMEOUT,
    FuzzBed,
    LoopBed,
    answer,
    check_conservation,
    check_refusal,
    describe_pcpus,
    run_examples,
    type_state,
)

from xenmca.rpc.identity import XEN
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2

# --- WatchInterrupts -------------------------------------------------------------------


@dataclass(frozen=True)
class WatchCall:
    pcpu: int
    credential: Credential
    action: str
    """"none": cancel at once; "read": read one with a short timeout; "inject": subscribe,
    inject one record, read."""
    record_type: int


watch_calls = st.builds(
    WatchCall,
    pcpus,
    caller(XEN),
    st.sampled_from(["none", "read", "inject"]),
    st.sampled_from(RECORD_TYPES),
)


async def wait_subscribers(bed: FuzzBed, pcpu: int, count: int) -> None:
    """Until the pCPU's interrupt line has at most count subscribers (5 s at most)."""
    firmware = bed.flow.host.servers[pcpu].firmware
    for _ in range(1000):
        if firmware.line.subscribers <= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"pCPU {pcpu}: {firmware.line.subscribers} subscribers, not {count}")


def test_fuzz_sal_watch_interrupts() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        run_examples(loop, 60, watch_calls, watch_interrupts)
        for pcpu in PCPUS:  # only the coordinator's own stream is left
            loop.run(wait_subscribers(loop.bed, pcpu, 1))


async def watch_interrupts(bed: FuzzBed, drawn: WatchCall) -> None:
    firmware = bed.flow.host.servers[drawn.pcpu].firmware
    before = firmware.line.subscribers
    call = stub(bed, drawn.pcpu).WatchInterrupts(
        sal_pb2.WatchInterruptsRequest(), metadata=drawn.credential.metadata(bed.flow.tokens)
    )
    refusal = auth_refusal("WatchInterrupts", drawn.credential)
    try:
        if refusal is not None:  # refused before it subscribed (issue 12 item 3)
            async with asyncio.timeout(CALL_TIMEOUT):
                got = await answer(call.read())
            assert got.code == refusal, got
            assert firmware.line.subscribers == before
        elif drawn.action != "none":
            async with asyncio.timeout(CALL_TIMEOUT):
                await call.initial_metadata()  # subscribed
            assert not call.done()
            if drawn.action == "inject":
                counters = firmware.store.state(drawn.record_type).counters
                created = await bed.flow.inject(drawn.pcpu, record_type=drawn.record_type)
                after = firmware.store.state(drawn.record_type).counters
                # Withheld only when the line was masked (by the coordinator's poller).
                if after.interrupts_raised > counters.interrupts_raised:
                    async with asyncio.timeout(CALL_TIMEOUT):
                        raised = await call.read()
                    assert raised is not grpc.aio.EOF
                    assert (raised.pcpu, raised.type) == (drawn.pcpu, drawn.record_type)
                    assert raised.record_id == created.first_record_id
            else:
                try:
                    async with asyncio.timeout(0.02):
                        raised = await call.read()
                    assert raised is not grpc.aio.EOF and raised.pcpu == drawn.pcpu
                except TimeoutError:
                    pass
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.CANCELLED:
            check_refusal(error)
    finally:
        call.cancel()
    await wait_subscribers(bed, drawn.pcpu, before)
    await check_conservation(bed)


# --- SetInterruptMask / DescribePcpu ---------------------------------------------------


@dataclass(frozen=True)
class MaskCall:
    pcpu: int
    record_type: int
    masked: bool
    credential: Credential


mask_calls = st.builds(MaskCall, pcpus, record_types, st.booleans(), caller(XEN))


async def set_interrupt_mask(bed: FuzzBed, drawn: MaskCall) -> None:
    store = bed.flow.host.servers[drawn.pcpu].firmware.store
    was = {t: store.masked(t) for t in RECORD_TYPES}
    got = await answer(
        stub(bed, drawn.pcpu).SetInterruptMask(
            sal_pb2.SetInterruptMaskRequest(type=drawn.record_type, masked=drawn.masked),  # type: ignore[arg-type]
            metadata=drawn.credential.metadata(bed.flow.tokens),
            timeout=CALL_TIMEOUT,
        )
    )
    refusal = auth_refusal("SetInterruptMask", drawn.credential)
    if refusal is not None:
        assert got.code == refusal, got
    elif drawn.record_type not in RECORD_TYPES:
        assert got.refused(INVALID_ARGUMENT, "INVALID_RECORD_TYPE"), got
    else:
        assert got.ok, got
        state = type_state((await describe_pcpus(bed))[drawn.pcpu], drawn.record_type)
        assert got.reply.previously_masked == was[drawn.record_type]
        assert state.masked == drawn.masked
        assert (got.reply.pending, got.reply.created) == (state.pending, state.created)
    if not got.ok:  # a refused call changed no line
        assert {t: store.masked(t) for t in RECORD_TYPES} == was
    await check_conservation(bed)


def test_fuzz_sal_set_interrupt_mask() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        loop.run(seed(loop.bed, per_type=1))
        run_examples(loop, 80, mask_calls, set_interrupt_mask)


async def describe_pcpu(bed: FuzzBed, drawn: tuple[int, Credential, bytes]) -> None:
    pcpu, credential, extra = drawn
    bed.flow.sal(pcpu)  # opens the pCPU's channel
    call = bed.flow.sal_channels[pcpu].unary_unary(
        "/xenmca.sal.v1.SalService/DescribePcpu",
        request_serializer=None,
        response_deserializer=sal_pb2.DescribePcpuResponse.FromString,
    )
    got = await answer(
        call(extra, metadata=credential.metadata(bed.flow.tokens), timeout=CALL_TIMEOUT)
    )
    assert got.ok, got  # open to every caller; unknown fields are ignored
    assert got.reply.pcpu == pcpu and len(got.reply.types) == len(RECORD_TYPES)
    await check_conservation(bed)


def test_fuzz_sal_describe_pcpu() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        loop.run(seed(loop.bed, per_type=1))
        run_examples(loop, 40, st.tuples(pcpus, credentials, unknown_fields), describe_pcpu)
