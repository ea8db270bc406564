"""Shared by the mTLS tests (test_tls*.py): the module's PKI and TLS bed fixtures, the record
types and the pCPU name, and a pCPU's pending count."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tls_harness import TlsBed, make_pki, tls_bed

from xenmca.record.v1 import record_pb2
from xenmca.rpc.identity import OPERATOR
from xenmca.rpc.tls import TlsFiles
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2

CMC = record_pb2.RECORD_TYPE_CMC
CPE = record_pb2.RECORD_TYPE_CPE
PCPU = "pcpu"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsFiles]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def bed(pki: dict[str, TlsFiles]) -> AsyncIterator[TlsBed]:
    async with tls_bed(pki) as started:
        yield started


async def pending(bed: TlsBed, pcpu: int, record_type: int = CMC) -> int:
    state = await bed.sal(pcpu, OPERATOR).DescribePcpu(sal_pb2.DescribePcpuRequest(), timeout=5)
    return next(t.pending for t in state.types if t.type == record_type)
