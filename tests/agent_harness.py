"""The agent under test: AgentService in process on port 0 over a tiny real child process,
and helpers to check its answers and refusals (tests/test_agent*.py)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from xenmca.agent.child import Child, ChildSpec, proc_state
from xenmca.agent.network import NetworkControl
from xenmca.agent.service import SERVICE_NAME, AgentServicer, add_to_server
from xenmca.agent.v1 import agent_service_pb2 as pb
from xenmca.agent.v1 import agent_service_pb2_grpc as agent_grpc
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.identity import OPERATOR, TokenBook, call_metadata
from xenmca.rpc.server import ServiceBinding, build_server
from xenmca.rpc.tls import TlsFiles, channel_credentials, server_credentials

# A tiny child: notes each run in its events file, exits 0 on SIGTERM (or ignores it).
CHILD = """
import json, os, signal, sys, time
events = sys.argv[sys.argv.index('--events') + 1]
if '--ignore-term' in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with open(events, 'a', buffering=1) as out:
    out.write(json.dumps({'kind': 'child_up', 'pid': os.getpid()}) + '\\n')
while True:
    time.sleep(3600)
"""


@dataclass
class Agent:
    stub: agent_grpc.AgentServiceStub
    child: Child
    events_file: Path
    state_dir: Path
    tokens: TokenBook | None

    def md(self, identity: str | None = OPERATOR) -> tuple[tuple[str, str], ...]:
        token = self.tokens.token_for(identity) if self.tokens and identity else None
        return call_metadata(token)


def child_argv(tmp_path: Path, *extra: str) -> tuple[str, ...]:
    return (
        sys.executable, "-c", CHILD, "--events", str(tmp_path / "child.jsonl"),
        "--state-dir", str(tmp_path / "state"), *extra,
    )  # fmt: skip


@asynccontextmanager
async def serve_agent(
    tmp_path: Path,
    argv: Sequence[str] | None = None,
    *,
    tokens: TokenBook | None = None,
    start: bool = True,
    events_file: Path | None = None,
    device: str = "xm-no-such-dev",
    tls: TlsFiles | None = None,
    client_tls: TlsFiles | None = None,
) -> AsyncIterator[Agent]:
    """The agent on port 0; with tls, under mutual TLS, its client presenting client_tls."""
    (tmp_path / "state").mkdir(exist_ok=True)
    spec = ChildSpec(
        argv=tuple(argv or child_argv(tmp_path)),
        state_dir=str(tmp_path / "state"),
        events_file=tmp_path / "child.jsonl" if events_file is None else events_file,
    )
    child = Child(spec, default_grace=5.0)
    servicer = AgentServicer(child, NetworkControl(device), tokens)
    built = build_server(
        "127.0.0.1:0",
        [ServiceBinding(SERVICE_NAME, lambda server: add_to_server(servicer, server))],
        tokens=tokens,
        credentials=server_credentials(tls) if tls is not None else None,
    )
    await built.start()
    if start:
        await child.start()
    address = f"127.0.0.1:{built.port}"
    channel = (
        grpc.aio.insecure_channel(address)
        if client_tls is None
        else grpc.aio.secure_channel(address, channel_credentials(client_tls))
    )
    try:
        yield Agent(
            agent_grpc.AgentServiceStub(channel),  # type: ignore[no-untyped-call]
            child,
            spec.events_file or Path(),
            tmp_path / "state",
            tokens,
        )
    finally:
        servicer.closing.set()
        await channel.close()
        await child.close(grace=2.0)
        await built.stop(0.5)


async def describe(agent: Agent) -> pb.Child:
    return (await agent.stub.DescribeChild(pb.DescribeChildRequest(), metadata=agent.md())).child


def refusal(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The refusal's one ErrorInfo (its google.rpc.Status holds exactly that detail)."""
    statuses = [
        status_pb2.Status.FromString(value)
        for key, value in error.trailing_metadata() or ()
        if key == "grpc-status-details-bin"
    ]
    assert len(statuses) == 1 and len(statuses[0].details) == 1, error.details()
    assert statuses[0].code == error.code().value[0]
    info = error_info_of(error)
    assert info is not None and info.domain == "xenmca.dev"
    return info


async def refused(call: Callable[[], object], code: grpc.StatusCode, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call()  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    assert refusal(caught.value).reason == reason


async def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def child_up(agent: Agent, runs: int = 1) -> None:
    """Wait until the child has written its first event in each of its runs so far
    (its SIGTERM handler is set by then)."""

    def lines() -> int:
        return len(agent.events_file.read_text().splitlines()) if agent.events_file.exists() else 0

    await wait_until(lambda: lines() >= runs)


def alive(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z")


def grace(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


FP = grpc.StatusCode.FAILED_PRECONDITION
