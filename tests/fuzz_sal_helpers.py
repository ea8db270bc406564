"""Shared by the SalService fuzz tests (test_fuzz_sal*.py): the pCPUs, the identity each
RPC requires and its refusal, a stub on a pCPU, seeding records, and the fuzzed record types."""

from __future__ import annotations

import grpc
from fuzz_strategies import RECORD_TYPES, Credential, enum_values, mostly
from hypothesis import strategies as st
from test_fuzz_support import FuzzBed

from xenmca.rpc.identity import OPERATOR, XEN
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

PCPUS = (0, 1)
pcpus = st.sampled_from(PCPUS)
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
# Who may call what on a pCPU (DESIGN 3, issue 6 item 4); the other RPCs are open.
REQUIRED_IDENTITY = {
    "InjectError": OPERATOR,
    "ListInjections": OPERATOR,
    "CancelInjection": OPERATOR,
    "GetStateInfo": XEN,
    "ClearStateInfo": XEN,
    "SetInterruptMask": XEN,
    "WatchInterrupts": XEN,
}
MIN_INJECT_RATE = 0.001
"""A paced injection's slowest rate (issue 12 item 4): one record per 1000 s."""


def auth_refusal(method: str, credential: Credential) -> grpc.StatusCode | None:
    """The code a pCPU must refuse this caller with, or None when the caller may call."""
    required = REQUIRED_IDENTITY.get(method)
    if required is None:
        return None
    if credential.identity is None:
        return grpc.StatusCode.UNAUTHENTICATED
    if credential.identity != required:
        return grpc.StatusCode.PERMISSION_DENIED
    return None


def stub(bed: FuzzBed, pcpu: int) -> sal_grpc.SalServiceStub:
    return bed.flow.sal(pcpu)


async def seed(bed: FuzzBed, per_type: int = 3) -> None:
    """A few records of every type on every pCPU (fewer than a storm's five)."""
    for pcpu in bed.pcpus:
        for record_type in RECORD_TYPES:
            await bed.flow.inject(pcpu, count=per_type, record_type=record_type)


record_types = mostly(st.sampled_from(RECORD_TYPES), enum_values)
