"""kill -9 at any moment: the pCPU's durable store and dom0's log lose and corrupt nothing.

Kill times are drawn from a seeded generator, so each run kills at the same
offsets; the writes they interrupt are real (paced injections, dom0 commits).
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from pathlib import Path

import pytest

from xenmca.dom0.log_queries import open_reader
from xenmca.layout.api import decode_record
from xenmca.rpc.channels import open_channel
from xenmca.rpc.identity import OPERATOR, XEN, TokenBook, call_metadata
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.testbed.infra.launcher import LocalTestbed
from xenmca.testbed.infra.processes import ManagedProcess
from xenmca.testbed.infra.spec import TestbedSpec
from xenmca.vocab import RecordType

pytestmark = pytest.mark.slow


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


async def describe(address: str, tokens: TokenBook) -> sal_pb2.DescribePcpuResponse:
    async with open_channel(address) as channel:
        return await sal_grpc.SalServiceStub(channel).DescribePcpu(
            sal_pb2.DescribePcpuRequest(),
            timeout=5,
            metadata=call_metadata(tokens.token_for(OPERATOR)),
        )


async def test_pcpu_store_survives_repeated_kills_during_paced_writes(tmp_path: Path) -> None:
    rng = random.Random(20061)
    tokens = TokenBook.generate()
    tokens.save(tmp_path / "tokens.json")
    state = tmp_path / "state"
    host = ManagedProcess(
        "pcpu-host",
        [
            "serve",
            "pcpu",
            "--pcpus",
            "0-1",
            "--host",
            "127.0.0.1",
            "--base-port",
            "0",
            "--state-dir",
            str(state),
            "--capacity",
            "100000",
            "--token-file",
            str(tmp_path / "tokens.json"),
            "--ready-file",
            str(tmp_path / "ready.json"),
        ],
        tmp_path / "host.log",
        ready_file=tmp_path / "ready.json",
    )
    operator = call_metadata(tokens.token_for(OPERATOR))
    last_created = 0
    try:
        for _round in range(5):
            await host.start()
            addresses = {int(k): v for k, v in (await host.wait_ready()).items()}
            before = await describe(addresses[0], tokens)
            created_now = sum(t.created for t in before.types)
            assert created_now >= last_created  # counters are durable too
            async with open_channel(addresses[0]) as channel:
                await sal_grpc.SalServiceStub(channel).InjectError(
                    sal_pb2.InjectErrorRequest(
                        type=RecordType.CMC, count=50_000, rate_per_second=20_000
                    ),
                    metadata=operator,
                    timeout=5,
                )
            await asyncio.sleep(rng.uniform(0.05, 0.4))  # the kill lands mid-batch
            await host.kill()
            last_created = created_now
        await host.start()
        addresses = {int(k): v for k, v in (await host.wait_ready()).items()}
        final = await describe(addresses[0], tokens)
        cmc = next(t for t in final.types if t.type == RecordType.CMC)
        assert cmc.created > last_created
        assert cmc.created == cmc.pending + cmc.cleared + cmc.overflowed
        # Every pending record reads back whole, ids unique and increasing.
        xen = call_metadata(tokens.token_for(XEN))
        async with open_channel(addresses[0]) as channel:
            stub = sal_grpc.SalServiceStub(channel)
            got = await stub.GetStateInfo(
                sal_pb2.GetStateInfoRequest(type=RecordType.CMC), metadata=xen
            )
            assert got.sal_status == 0
            assert decode_record(got.record.raw).record_id == got.record.record_id
        assert final.next_record_id > cmc.newest_record_id >= cmc.oldest_record_id > 0
        assert cmc.newest_record_id - cmc.oldest_record_id + 1 == cmc.pending
    finally:
        await host.stop()
    assert integrity(state / "firmware.sqlite") == "ok"


async def test_dom0_log_survives_repeated_kills_while_committing(tmp_path: Path) -> None:
    rng = random.Random(20062)
    spec = TestbedSpec(workdir=tmp_path / "bed", pcpus=4, pcpus_per_host=4)
    async with LocalTestbed(spec) as bed:
        assert bed.dom0 is not None
        for address in bed.pcpu_addresses.values():
            async with open_channel(address) as channel:
                await sal_grpc.SalServiceStub(channel).InjectError(
                    sal_pb2.InjectErrorRequest(type=RecordType.CMC, count=60, rate_per_second=40),
                    metadata=bed.operator_metadata(),
                    timeout=5,
                )
        for _ in range(6):
            await asyncio.sleep(rng.uniform(0.4, 0.9))  # dom0 is mid GET/commit/CLEAR
            await bed.dom0.kill()
            await bed.dom0.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        while True:
            states = [await describe(a, bed.tokens) for a in bed.pcpu_addresses.values()]
            created = sum(t.created for s in states for t in s.types)
            if created == 240 and all(t.pending == 0 for s in states for t in s.types):
                break
            assert loop.time() < deadline, "records not all delivered after the kills"
            await asyncio.sleep(0.2)
    cleared_events = [
        json.loads(line)
        for line in (bed.workdir / "events-pcpu-host0.jsonl").open()
        if '"record_cleared"' in line
    ]
    assert len({(e["pcpu"], e["record_id"]) for e in cleared_events}) == 240  # none unreported
    assert integrity(bed.db_path) == "ok"
    with open_reader(bed.db_path) as conn:
        keys = conn.execute("SELECT pcpu, record_id FROM records").fetchall()
    assert len(keys) == len(set(keys)) == 240  # every record exactly once
    dom0_events = [
        json.loads(line)
        for line in (bed.workdir / "events-dom0.jsonl").open()
        if line.strip().startswith("{")
    ]
    # The kills landed while dom0 was attached and logging (not only between runs).
    assert sum(1 for e in dom0_events if e.get("kind") == "dom0_attached") >= 5
    assert sum(1 for e in dom0_events if e.get("kind") == "record_committed") >= 240
