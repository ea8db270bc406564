"""The whole flow as real `xenmca` processes: pCPU hosts, coordinator and dom0 on loopback."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from xenmca.dom0.log_queries import open_reader, stats
from xenmca.rpc.channels import open_channel
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.testbed.infra.launcher import LocalTestbed
from xenmca.testbed.infra.spec import TestbedSpec
from xenmca.vocab import RecordType

pytestmark = pytest.mark.slow


async def describe_all(bed: LocalTestbed) -> list[sal_pb2.DescribePcpuResponse]:
    result = []
    for address in bed.pcpu_addresses.values():
        async with open_channel(address) as channel:
            result.append(
                await sal_grpc.SalServiceStub(channel).DescribePcpu(
                    sal_pb2.DescribePcpuRequest(), metadata=bed.operator_metadata(), timeout=5
                )
            )
    return result


async def test_thousand_records_from_sixteen_pcpus_none_lost_or_duplicated(tmp_path) -> None:
    total, pcpus = 1000, 16
    spec = TestbedSpec(workdir=tmp_path / "bed", pcpus=pcpus, pcpus_per_host=8)
    async with LocalTestbed(spec) as bed:
        started = time.monotonic()
        for pcpu, address in bed.pcpu_addresses.items():
            count = total // pcpus + (1 if pcpu < total % pcpus else 0)
            async with open_channel(address) as channel:
                reply = await sal_grpc.SalServiceStub(channel).InjectError(
                    sal_pb2.InjectErrorRequest(type=RecordType.CMC, count=count),
                    metadata=bed.operator_metadata(),
                    timeout=10,
                )
            assert reply.stored == count and reply.overflowed == 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while (await bed.describe()).counters.records_cleared < total:
            assert loop.time() < deadline, "records not all delivered within 120 s"
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        firmware = await describe_all(bed)
        xen = await bed.describe()
    created = sum(t.created for f in firmware for t in f.types)
    pending = sum(t.pending for f in firmware for t in f.types)
    overflowed = sum(t.overflowed for f in firmware for t in f.types)
    with open_reader(bed.db_path) as conn:
        logged = stats(conn)
        keys = {tuple(row) for row in conn.execute("SELECT pcpu, record_id FROM records")}
    assert created == total
    assert (logged.records, len(keys), pending, overflowed) == (total, total, 0, 0)
    assert logged.records + pending + overflowed == created  # conservation: lost = 0
    assert {pcpu for pcpu, _ in keys} == set(range(pcpus))
    assert xen.counters.local_calls > 0 and xen.counters.ipi_calls > 0
    figures = {
        "records": total,
        "records_per_s": round(total / elapsed, 1),
        "latency_ms_p50": round(logged.latency.p50_ms, 2),
        "latency_ms_p99": round(logged.latency.p99_ms, 2),
        "duplicates_dropped": logged.duplicates_dropped,
    }
    print("FLOW-FIGURES", json.dumps(figures))
