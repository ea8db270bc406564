"""`xenmca agent`: AgentService in process on port 0 over a real child process.

The lifecycle verbs and their refusals (exactly one ErrorInfo, nothing changed),
restart and kill keeping the command line and state directory, pause seen in
/proc, WatchEvents across a restart, ReadClock against the test's own clocks,
the network verbs' refusals (and a real cut in a network namespace when root),
operator-only identity, and the `xenmca agent` command line.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
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
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook, call_metadata
from xenmca.rpc.server import ServiceBinding, build_server

random.seed(16)

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
) -> AsyncIterator[Agent]:
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
    )
    await built.start()
    if start:
        await child.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{built.port}")
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


async def test_describe_a_started_child(tmp_path: Path) -> None:
    async with serve_agent(tmp_path) as agent:
        child = await describe(agent)
        assert child.state == pb.CHILD_STATE_RUNNING
        assert child.pid > 0 and alive(child.pid)
        assert child.starts == 1 and not child.HasField("last_exit")
        assert tuple(child.argv) == child_argv(tmp_path)
        assert child.state_dir == str(tmp_path / "state")
        assert child.events_file == str(tmp_path / "child.jsonl")


async def test_stop_then_every_verb_that_needs_a_process_is_refused(tmp_path: Path) -> None:
    async with serve_agent(tmp_path) as agent:
        pid = (await describe(agent)).pid
        await child_up(agent)
        await refused(
            lambda: agent.stub.StartChild(pb.StartChildRequest(), metadata=agent.md()),
            FP,
            "CHILD_RUNNING",
        )
        assert (await describe(agent)).pid == pid
        stopped = (await agent.stub.StopChild(pb.StopChildRequest(), metadata=agent.md())).child
        assert stopped.state == pb.CHILD_STATE_STOPPED and stopped.pid == 0
        assert (stopped.last_exit.exit_code, stopped.last_exit.signal) == (0, 0)
        assert not alive(pid)
        for call in (
            lambda: agent.stub.StopChild(pb.StopChildRequest(), metadata=agent.md()),
            lambda: agent.stub.KillChild(pb.KillChildRequest(), metadata=agent.md()),
            lambda: agent.stub.PauseChild(pb.PauseChildRequest(), metadata=agent.md()),
            lambda: agent.stub.ResumeChild(pb.ResumeChildRequest(), metadata=agent.md()),
        ):
            await refused(call, FP, "CHILD_NOT_RUNNING")
            assert await describe(agent) == stopped


async def test_stop_sends_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    async with serve_agent(tmp_path, child_argv(tmp_path, "--ignore-term")) as agent:
        await child_up(agent)
        reply = await agent.stub.StopChild(
            pb.StopChildRequest(grace=grace(0.2)), metadata=agent.md()
        )
        assert reply.child.state == pb.CHILD_STATE_STOPPED
        assert reply.child.last_exit.signal == signal.SIGKILL
        await refused(
            lambda: agent.stub.StopChild(
                pb.StopChildRequest(grace=grace(301)), metadata=agent.md()
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_GRACE",
        )


async def test_kill_is_a_crash_then_start_runs_it_again(tmp_path: Path) -> None:
    async with serve_agent(tmp_path) as agent:
        (agent.state_dir / "kept").write_text("records")
        first = (await describe(agent)).pid
        killed = (await agent.stub.KillChild(pb.KillChildRequest(), metadata=agent.md())).child
        assert killed.state == pb.CHILD_STATE_EXITED
        assert (killed.last_exit.signal, killed.last_exit.run) == (signal.SIGKILL, 1)
        assert not alive(first) and (agent.state_dir / "kept").read_text() == "records"
        started = (await agent.stub.StartChild(pb.StartChildRequest(), metadata=agent.md())).child
        assert started.state == pb.CHILD_STATE_RUNNING and started.starts == 2
        assert started.pid != first and alive(started.pid)
        assert started.argv == killed.argv and started.state_dir == killed.state_dir


async def test_restart_keeps_the_command_line_and_state_dir_with_a_new_pid(
    tmp_path: Path,
) -> None:
    async with serve_agent(tmp_path) as agent:
        before = await describe(agent)
        await child_up(agent)
        after = (await agent.stub.RestartChild(pb.RestartChildRequest(), metadata=agent.md())).child
        assert after.state == pb.CHILD_STATE_RUNNING and after.starts == 2
        assert after.pid != before.pid and not alive(before.pid) and alive(after.pid)
        assert (after.argv, after.state_dir) == (before.argv, before.state_dir)
        assert (after.last_exit.signal, after.last_exit.run) == (0, 1)
        crashed = (
            await agent.stub.RestartChild(pb.RestartChildRequest(kill=True), metadata=agent.md())
        ).child
        assert crashed.last_exit.signal == signal.SIGKILL and crashed.starts == 3
        assert not alive(after.pid) and alive(crashed.pid)


async def test_restart_of_a_stopped_child_starts_it(tmp_path: Path) -> None:
    async with serve_agent(tmp_path, start=False) as agent:
        assert (await describe(agent)).state == pb.CHILD_STATE_STOPPED
        child = (await agent.stub.RestartChild(pb.RestartChildRequest(), metadata=agent.md())).child
        assert child.state == pb.CHILD_STATE_RUNNING and child.starts == 1


async def test_pause_shows_in_proc_and_resume_undoes_it(tmp_path: Path) -> None:
    async with serve_agent(tmp_path) as agent:
        pid = (await describe(agent)).pid
        paused = (await agent.stub.PauseChild(pb.PauseChildRequest(), metadata=agent.md())).child
        assert paused.state == pb.CHILD_STATE_PAUSED and paused.pid == pid
        assert proc_state(pid) == "T"
        await refused(
            lambda: agent.stub.PauseChild(pb.PauseChildRequest(), metadata=agent.md()),
            FP,
            "CHILD_PAUSED",
        )
        await refused(
            lambda: agent.stub.StartChild(pb.StartChildRequest(), metadata=agent.md()),
            FP,
            "CHILD_RUNNING",
        )
        assert proc_state(pid) == "T" and await describe(agent) == paused
        resumed = (await agent.stub.ResumeChild(pb.ResumeChildRequest(), metadata=agent.md())).child
        assert resumed.state == pb.CHILD_STATE_RUNNING and proc_state(pid) != "T"
        await refused(
            lambda: agent.stub.ResumeChild(pb.ResumeChildRequest(), metadata=agent.md()),
            FP,
            "CHILD_NOT_PAUSED",
        )


async def test_stop_of_a_paused_child_is_graceful(tmp_path: Path) -> None:
    async with serve_agent(tmp_path) as agent:
        await child_up(agent)
        await agent.stub.PauseChild(pb.PauseChildRequest(), metadata=agent.md())
        stopped = (await agent.stub.StopChild(pb.StopChildRequest(), metadata=agent.md())).child
        assert stopped.state == pb.CHILD_STATE_STOPPED
        assert (stopped.last_exit.exit_code, stopped.last_exit.signal) == (0, 0)


async def test_a_child_that_ends_by_itself_is_exited_with_its_code(tmp_path: Path) -> None:
    argv = (sys.executable, "-c", "import sys; sys.exit(3)")
    async with serve_agent(tmp_path, argv) as agent:
        await wait_until(lambda: agent.child.state.value == "exited")
        child = await describe(agent)
        assert child.state == pb.CHILD_STATE_EXITED and child.pid == 0
        assert (child.last_exit.exit_code, child.last_exit.signal) == (3, 0)


async def test_a_program_that_cannot_start_is_refused(tmp_path: Path) -> None:
    async with serve_agent(tmp_path, [str(tmp_path / "no-such-program")], start=False) as agent:
        await refused(
            lambda: agent.stub.StartChild(pb.StartChildRequest(), metadata=agent.md()),
            FP,
            "CHILD_START_FAILED",
        )
        child = await describe(agent)
        assert child.state == pb.CHILD_STATE_STOPPED and child.starts == 0


async def next_event(stream: AsyncIterator[pb.WatchEventsResponse]) -> dict[str, object]:
    reply = await asyncio.wait_for(anext(stream), 5.0)
    event: dict[str, object] = json.loads(reply.json)
    return event


async def test_watch_events_follows_the_child_across_a_restart(tmp_path: Path) -> None:
    async with serve_agent(tmp_path) as agent:
        first = (await describe(agent)).pid
        call = agent.stub.WatchEvents(pb.WatchEventsRequest(from_start=True), metadata=agent.md())
        stream = call.__aiter__()
        assert await next_event(stream) == {"kind": "child_up", "pid": first}
        second = (
            await agent.stub.RestartChild(pb.RestartChildRequest(), metadata=agent.md())
        ).child.pid
        assert await next_event(stream) == {"kind": "child_up", "pid": second}
        call.cancel()


async def test_watch_events_from_now_skips_what_was_written(tmp_path: Path) -> None:
    async with serve_agent(tmp_path) as agent:
        await child_up(agent)
        with agent.events_file.open("a") as out:
            out.write('{"kind": "torn')  # the line being written "now" is not sent
            out.flush()
            call = agent.stub.WatchEvents(pb.WatchEventsRequest(), metadata=agent.md())
            await call.initial_metadata()  # the stream's start is fixed
            stream = call.__aiter__()
            out.write('"}\n')
            out.write('{"kind": "part')  # a torn line is held back until it is complete
            out.flush()
            await asyncio.sleep(0.1)
            out.write('ial"}\n')
        assert await next_event(stream) == {"kind": "partial"}
        call.cancel()


async def test_watch_events_without_an_events_file_is_refused(tmp_path: Path) -> None:
    argv = (sys.executable, "-c", "import time; time.sleep(60)")
    async with serve_agent(tmp_path, argv, start=False) as agent:
        agent.child.spec = ChildSpec(argv=argv)
        call = agent.stub.WatchEvents(pb.WatchEventsRequest(), metadata=agent.md())
        await refused(call.read, FP, "NO_CHILD_EVENTS")


async def test_read_clock_is_monotonic_and_close_to_ours(tmp_path: Path) -> None:
    async with serve_agent(tmp_path, start=False) as agent:
        previous = 0
        for _ in range(5):
            sent = time.monotonic_ns()
            wall = time.time_ns()
            reply = await agent.stub.ReadClock(pb.ReadClockRequest(), metadata=agent.md())
            back = time.monotonic_ns()
            # Same machine, same clocks: each reading lies within the round trip.
            assert sent <= reply.received_monotonic_ns <= reply.monotonic_ns
            assert reply.monotonic_ns <= reply.sent_monotonic_ns <= back
            assert reply.monotonic_ns > previous
            assert abs(reply.realtime_ns - wall) < (back - sent) + 50_000_000
            previous = reply.monotonic_ns


async def test_network_verbs_are_refused_where_the_host_does_not_allow_them(
    tmp_path: Path,
) -> None:
    async with serve_agent(tmp_path, start=False, device="xm-no-such-dev") as agent:
        cut = pb.CutNetworkRequest(duration=grace(1))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await agent.stub.CutNetwork(cut, metadata=agent.md())
        assert caught.value.code() == FP
        assert refusal(caught.value).reason == "NETWORK_CONTROL_UNAVAILABLE"
        assert caught.value.details() and (
            "xm-no-such-dev" in caught.value.details() or "root" in caught.value.details()
        )
        await refused(
            lambda: agent.stub.HealNetwork(pb.HealNetworkRequest(), metadata=agent.md()),
            FP,
            "NETWORK_CONTROL_UNAVAILABLE",
        )
        for bad in (pb.CutNetworkRequest(), pb.CutNetworkRequest(duration=grace(3601))):
            await refused(
                lambda bad=bad: agent.stub.CutNetwork(bad, metadata=agent.md()),  # type: ignore[misc]
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_DURATION",
            )


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
