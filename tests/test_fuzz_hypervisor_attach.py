"""Fuzzing HypervisorService's AttachDom0 (arbitrary instance names and credentials, a message
over the size limit) and request bytes that are not a protobuf message at all."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
import pytest
from fuzz_hypervisor_helpers import (
    INVALID_ARGUMENT,
    PCPUS,
    PERMISSION_DENIED,
    UNAUTHENTICATED,
    seed,
    wait_queued,
)
from fuzz_strategies import PRINTABLE, Credential, caller
from hypothesis import strategies as st
from test_fuzz_support import (
    CALL_TIMEOUT,
    FuzzBed,
    LoopBed,
    check_alive_and_conserved,
    check_conservation,
    check_coordinator,
    check_refusal,
    fuzz_bed,
    is_oversized_refusal,
    run_examples,
)

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
from xenmca.rpc.identity import DOM0, OPERATOR

# --- AttachDom0 ------------------------------------------------------------------------


@dataclass(frozen=True)
class AttachCall:
    instance: str
    credential: Credential
    read: bool
    """Read one virtual interrupt (with a short timeout) before cancelling."""


instances = st.one_of(
    st.text(max_size=40),
    st.text(PRINTABLE, min_size=200, max_size=400),
    st.sampled_from(["", " ", "\x00", "dom0\nforged-event", "é" * 1000, "x" * 100_000]),
)
attach_calls = st.builds(AttachCall, instances, caller(DOM0), st.booleans())


async def attach_dom0(bed: FuzzBed, drawn: AttachCall) -> None:
    coordinator = bed.flow.coordinator
    if not any(q.in_flight or len(q) for q in coordinator.queues.values()):
        await seed(bed, per_type=1)
        await wait_queued(bed)
    call = bed.flow.hv.AttachDom0(
        hv_pb2.AttachDom0Request(instance=drawn.instance),
        metadata=drawn.credential.metadata(bed.flow.tokens),
    )
    refusal = None
    if drawn.credential.identity is None:
        refusal = UNAUTHENTICATED
    elif drawn.credential.identity != DOM0:
        refusal = PERMISSION_DENIED
    try:
        if drawn.read or refusal is not None:
            async with asyncio.timeout(0.2 if refusal is None else CALL_TIMEOUT):
                interrupt = await call.read()
            assert refusal is None, f"{drawn.credential} was not refused"
            assert interrupt is not grpc.aio.EOF
            assert interrupt.type in coordinator.config.injected_types
            assert interrupt.injection_id > 0
    except grpc.aio.AioRpcError as error:
        assert error.code() == refusal, error
        check_refusal(error)
    except TimeoutError:
        assert refusal is None
    finally:
        call.cancel()
    # The coordinator notices the cancelled stream: dom0 detached, its entry taken back.
    await bed.flow.watch.until(lambda: coordinator.session is None)
    await check_coordinator(bed)
    await check_conservation(bed)


def test_fuzz_hv_attach_dom0() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        loop.run(seed(loop.bed, per_type=1))
        loop.run(wait_queued(loop.bed))
        run_examples(loop, 80, attach_calls, attach_dom0)
        assert not loop.bed.cleared_events()


async def test_oversized_attach_is_refused_by_grpc_and_the_coordinator_lives_on() -> None:
    async with fuzz_bed(pcpus=1) as bed:
        unlimited = grpc.aio.insecure_channel(
            bed.flow.xen_address, options=[("grpc.max_send_message_length", -1)]
        )
        try:
            call = hv_grpc.HypervisorServiceStub(unlimited).AttachDom0(
                hv_pb2.AttachDom0Request(instance="x" * (5 * 1024 * 1024)),
                metadata=bed.flow.dom0_md,
                timeout=CALL_TIMEOUT,
            )
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call.read()
        finally:
            await unlimited.close()
        assert is_oversized_refusal(raised.value), raised.value
        assert bed.flow.coordinator.session is None
        await check_alive_and_conserved(bed)


# --- bytes that are not a protobuf message at all --------------------------------------

GARBAGE = (b"\xff\xff\xff", b"\x08", b"\x0a\x05ab", b"\x12\x80\x80\x80\x80\x10")
"""A bad tag, a truncated varint, a truncated length-delimited field, a 4 GiB length."""


async def send_garbage(bed: FuzzBed) -> list[tuple[str, bytes, grpc.aio.AioRpcError]]:
    """Every method of both services, with every GARBAGE request; the refusals."""
    from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv
    from xenmca.sal.v1 import sal_service_pb2 as sal

    targets = [
        (hv.DESCRIPTOR.services_by_name["HypervisorService"], bed.flow.channel, DOM0),
        (sal.DESCRIPTOR.services_by_name["SalService"], bed.flow.sal_channels[0], OPERATOR),
    ]
    refusals = []
    for service, channel, identity in targets:
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            for garbage in GARBAGE:
                if method.server_streaming:
                    call = channel.unary_stream(path)(garbage, metadata=bed.flow.md(identity))
                    read = call.read()
                else:
                    read = channel.unary_unary(path)(garbage, metadata=bed.flow.md(identity))
                try:
                    async with asyncio.timeout(CALL_TIMEOUT):
                        await read
                except grpc.aio.AioRpcError as error:
                    refusals.append((path, garbage, error))
                else:
                    raise AssertionError(f"{path} accepted {garbage!r}")
    return refusals


async def test_garbage_request_bytes_are_refused_and_the_servers_live_on() -> None:
    async with fuzz_bed(pcpus=1) as bed:
        await seed(bed, per_type=1)
        bed.flow.sal(0)  # open the pCPU's channel
        refusals = await send_garbage(bed)
        from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv
        from xenmca.sal.v1 import sal_service_pb2 as sal

        methods = sum(
            len(module.DESCRIPTOR.services_by_name[name].methods)
            for module, name in ((hv, "HypervisorService"), (sal, "SalService"))
        )
        assert len(refusals) == len(GARBAGE) * methods
        for path, garbage, error in refusals:
            # gRPC's own deserializer refuses before any servicer runs.
            assert error.code() in (grpc.StatusCode.UNKNOWN, INVALID_ARGUMENT), (path, garbage)
        await check_alive_and_conserved(bed)


async def test_garbage_request_bytes_get_invalid_argument_with_an_error_info() -> None:
    async with fuzz_bed(pcpus=1) as bed:
        bed.flow.sal(0)
        for path, garbage, error in await send_garbage(bed):
            assert error.code() == INVALID_ARGUMENT, (path, garbage, error.details())
            check_refusal(error)
