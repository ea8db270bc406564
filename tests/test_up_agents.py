"""A testbed whose components run under agents: the inventory, and faults through the agents.

Real processes (`slow`): LocalTestbed with `agents=True` starts every component as
the child of an `xenmca agent`, on loopback and, as root, each host in its own
network namespace; target.json tells where everything is, and the agents answer
for their component: its state, a crash and restart, and the host's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path

import grpc
import pytest

from xenmca.agent.v1 import agent_service_pb2 as agent_pb2
from xenmca.agent.v1 import agent_service_pb2_grpc as agent_grpc
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
from xenmca.record.v1 import record_pb2
from xenmca.rpc.channels import open_channel
from xenmca.rpc.identity import OPERATOR, TokenBook, call_metadata
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.testbed.infra.clock_offset import agent_offset
from xenmca.testbed.infra.launcher import LocalTestbed
from xenmca.testbed.infra.netns import NetnsUnavailable, check_available
from xenmca.testbed.infra.spec import TestbedSpec

pytestmark = pytest.mark.slow


def _operator(target: dict) -> tuple[tuple[str, str], ...]:
    book = TokenBook.load(Path(target["token_file"]))
    return call_metadata(book.token_for(OPERATOR))


async def _logged(address: str, metadata: tuple[tuple[str, str], ...], count: int) -> None:
    async with open_channel(address) as channel, asyncio.timeout(30):
        stub = hv_grpc.HypervisorServiceStub(channel)
        request = hv_pb2.DescribeHypervisorRequest()
        while True:
            # A restarted coordinator refuses connections until it serves again.
            with contextlib.suppress(grpc.aio.AioRpcError):
                state = await stub.DescribeHypervisor(request, metadata=metadata)
                if state.counters.records_cleared >= count:
                    return
            await asyncio.sleep(0.05)


async def _inject(address: str, metadata: tuple[tuple[str, str], ...]) -> None:
    async with open_channel(address) as channel:
        await sal_grpc.SalServiceStub(channel).InjectError(
            sal_pb2.InjectErrorRequest(type=record_pb2.RECORD_TYPE_CMC, count=1),
            metadata=metadata,
        )


async def _check_bed(bed: LocalTestbed) -> None:
    assert bed.target_file is not None
    target = json.loads(bed.target_file.read_text())
    metadata = _operator(target)
    assert [h["pcpus"] for h in target["pcpu_hosts"]] == [[0, 1], [2, 3]]
    assert target["xen"]["address"] == bed.xen_address
    assert {int(p): a for p, a in target["pcpus"].items()} == bed.pcpu_addresses

    agents = {
        "xen": target["xen"]["agent"],
        "dom0": target["dom0"]["agent"],
        **{h["name"]: h["agent"] for h in target["pcpu_hosts"]},
    }
    for name, address in agents.items():
        async with open_channel(address) as channel:
            child = (
                await agent_grpc.AgentServiceStub(channel).DescribeChild(
                    agent_pb2.DescribeChildRequest(), metadata=metadata
                )
            ).child
        assert child.state == agent_pb2.CHILD_STATE_RUNNING, name
        assert child.starts == 1
        words = {"xen": ("serve", "xen"), "dom0": ("dom0",)}.get(name, ("serve", "pcpu"))
        assert all(word in child.argv for word in words), (name, list(child.argv))

    # A coordinator crash and restart, through its agent: records still flow after it.
    await _inject(target["pcpus"]["1"], metadata)
    await _logged(bed.xen_address, metadata, 1)
    async with open_channel(agents["xen"]) as channel:
        restarted = await agent_grpc.AgentServiceStub(channel).RestartChild(
            agent_pb2.RestartChildRequest(kill=True), metadata=metadata
        )
    assert restarted.child.starts == 2 and restarted.child.last_exit.signal == 9
    await _inject(target["pcpus"]["3"], metadata)
    await _logged(bed.xen_address, metadata, 1)  # the new coordinator counts from 0

    # Each host's clock, through its agent: the same machine, so no offset to speak of.
    async with open_channel(agents["pcpu-host1"]) as channel:
        offset = await agent_offset(channel, metadata)
    assert abs(offset.offset_ns) <= offset.uncertainty_ns + 1_000_000


async def test_agents_on_loopback(tmp_path: Path) -> None:
    spec = TestbedSpec(workdir=tmp_path, pcpus=4, pcpus_per_host=2, agents=True)
    async with LocalTestbed(spec) as bed:
        await _check_bed(bed)


async def test_agents_in_network_namespaces(tmp_path: Path) -> None:
    try:
        check_available()
    except NetnsUnavailable as exc:
        pytest.skip(str(exc))
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    spec = TestbedSpec(workdir=tmp_path, pcpus=4, pcpus_per_host=2, agents=True, network="netns")
    async with LocalTestbed(spec) as bed:
        await _check_bed(bed)
