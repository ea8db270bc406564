"""Fuzzing HypervisorService's SetVcpuPlacement and DescribeHypervisor of a real coordinator
over real pCPU servers: arbitrary pCPU numbers and credentials."""

from __future__ import annotations

from dataclasses import dataclass

from fuzz_hypervisor_helpers import INVALID_ARGUMENT, PCPUS, PERMISSION_DENIED, UNAUTHENTICATED
from fuzz_strategies import MAX_U32, Credential, caller, credentials, mostly, unknown_fields
from hypothesis import strategies as st
from test_fuzz_support import CALL_TIMEOUT, FuzzBed, LoopBed, answer, run_examples

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.rpc.identity import OPERATOR

# --- SetVcpuPlacement / DescribeHypervisor ---------------------------------------------


@dataclass(frozen=True)
class PlacementCall:
    pcpu: int
    credential: Credential


placement_calls = st.builds(
    PlacementCall,
    mostly(st.sampled_from(PCPUS), st.one_of(st.integers(0, 8), st.integers(0, MAX_U32))),
    caller(OPERATOR),
)


async def set_vcpu_placement(bed: FuzzBed, drawn: PlacementCall) -> None:
    coordinator = bed.flow.coordinator
    before = coordinator.vcpu0_pcpu
    got = await answer(
        bed.flow.hv.SetVcpuPlacement(
            hv_pb2.SetVcpuPlacementRequest(pcpu=drawn.pcpu),
            metadata=drawn.credential.metadata(bed.flow.tokens),
            timeout=CALL_TIMEOUT,
        )
    )
    if drawn.credential.identity is None:
        assert got.code == UNAUTHENTICATED, got
    elif drawn.credential.identity != OPERATOR:
        assert got.code == PERMISSION_DENIED, got
    elif drawn.pcpu not in PCPUS:
        assert got.refused(INVALID_ARGUMENT, "UNKNOWN_PCPU"), got
    else:
        assert got.ok and got.reply.previous_pcpu == before, got
        assert coordinator.vcpu0_pcpu == drawn.pcpu
        return
    assert coordinator.vcpu0_pcpu == before  # a refusal moves nothing


def test_fuzz_hv_set_vcpu_placement() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        run_examples(loop, 80, placement_calls, set_vcpu_placement)


async def describe_hypervisor(bed: FuzzBed, drawn: tuple[Credential, bytes]) -> None:
    credential, extra = drawn
    call = bed.flow.channel.unary_unary(
        "/xenmca.hypervisor.v1.HypervisorService/DescribeHypervisor",
        request_serializer=None,
        response_deserializer=hv_pb2.DescribeHypervisorResponse.FromString,
    )
    got = await answer(
        call(extra, metadata=credential.metadata(bed.flow.tokens), timeout=CALL_TIMEOUT)
    )
    if credential.identity is None:
        assert got.code == UNAUTHENTICATED, got
    else:
        assert got.ok, got
        assert sorted(p.pcpu for p in got.reply.pcpus) == list(PCPUS)
        assert got.reply.vcpu0_pcpu == bed.flow.coordinator.vcpu0_pcpu


def test_fuzz_hv_describe_hypervisor() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        run_examples(loop, 40, st.tuples(credentials, unknown_fields), describe_hypervisor)
