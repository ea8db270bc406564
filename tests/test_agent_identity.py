"""AgentService is operator only: dom0 and xen get PERMISSION_DENIED, no token
UNAUTHENTICATED, on every RPC, and nothing changes; the operator's calls succeed.
Under mutual TLS the identity is the client certificate's CN, with the same answers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from agent_harness import alive, describe, grace, refusal, serve_agent

from xenmca.agent.v1 import agent_service_pb2 as pb
from xenmca.agent.v1 import agent_service_pb2_grpc as agent_grpc
from xenmca.ops.pki import generate_test_pki
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook

CALLS: dict[str, Callable[[agent_grpc.AgentServiceStub, tuple[tuple[str, str], ...]], object]] = {
    "DescribeChild": lambda s, md: s.DescribeChild(pb.DescribeChildRequest(), metadata=md),
    "StartChild": lambda s, md: s.StartChild(pb.StartChildRequest(), metadata=md),
    "StopChild": lambda s, md: s.StopChild(pb.StopChildRequest(), metadata=md),
    "KillChild": lambda s, md: s.KillChild(pb.KillChildRequest(), metadata=md),
    "RestartChild": lambda s, md: s.RestartChild(pb.RestartChildRequest(), metadata=md),
    "PauseChild": lambda s, md: s.PauseChild(pb.PauseChildRequest(), metadata=md),
    "ResumeChild": lambda s, md: s.ResumeChild(pb.ResumeChildRequest(), metadata=md),
    "CutNetwork": lambda s, md: s.CutNetwork(pb.CutNetworkRequest(duration=grace(1)), metadata=md),
    "HealNetwork": lambda s, md: s.HealNetwork(pb.HealNetworkRequest(), metadata=md),
    "WatchEvents": lambda s, md: s.WatchEvents(pb.WatchEventsRequest(), metadata=md).read(),
    "ReadClock": lambda s, md: s.ReadClock(pb.ReadClockRequest(), metadata=md),
}


def test_every_rpc_is_covered_by_the_identity_test() -> None:
    assert set(CALLS) == set(pb.DESCRIPTOR.services_by_name["AgentService"].methods_by_name)


async def test_only_the_operator_may_call_the_agent(tmp_path: Path) -> None:
    tokens = TokenBook.generate()
    async with serve_agent(tmp_path, tokens=tokens) as agent:
        before = await describe(agent)
        for method, call in CALLS.items():
            for identity, code in (
                (DOM0, grpc.StatusCode.PERMISSION_DENIED),
                (XEN, grpc.StatusCode.PERMISSION_DENIED),
                (None, grpc.StatusCode.UNAUTHENTICATED),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call(agent.stub, agent.md(identity))  # type: ignore[misc]
                assert caught.value.code() == code, (method, identity)
                assert refusal(caught.value).metadata["method"] == method
        assert await describe(agent) == before and alive(before.pid)
        assert not agent.events_file.exists() or agent.child.state.value == "running"
        paused = await agent.stub.PauseChild(pb.PauseChildRequest(), metadata=agent.md())
        assert paused.child.state == pb.CHILD_STATE_PAUSED
        resumed = await agent.stub.ResumeChild(pb.ResumeChildRequest(), metadata=agent.md())
        assert resumed.child.state == pb.CHILD_STATE_RUNNING
        await agent.stub.ReadClock(pb.ReadClockRequest(), metadata=agent.md())


@pytest.mark.parametrize("identity", [DOM0, XEN, "pcpu"])
async def test_under_tls_only_the_operator_certificate_may_call_the_agent(
    tmp_path: Path, identity: str
) -> None:
    pki = generate_test_pki(tmp_path / "tls")
    async with serve_agent(
        tmp_path, tls=pki[identity], client_tls=pki[identity]
    ) as agent:  # the agent presents the component's certificate, as under `xenmca up`
        for method, call in CALLS.items():
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(agent.stub, ())  # type: ignore[misc]
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
            info = refusal(caught.value)
            assert info.metadata["method"] == method and info.metadata["identity"] == identity
        assert agent.child.state.value == "running"  # nothing changed
    async with serve_agent(tmp_path, tls=pki[identity], client_tls=pki[OPERATOR]) as agent:
        paused = await agent.stub.PauseChild(pb.PauseChildRequest())
        assert paused.child.state == pb.CHILD_STATE_PAUSED
        await agent.stub.ReadClock(pb.ReadClockRequest())
