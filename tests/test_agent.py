"""`xenmca agent`: AgentService in process on port 0 over a real child process.

The lifecycle verbs and their refusals (exactly one ErrorInfo, nothing changed),
restart and kill keeping the command line and state directory, pause seen in
/proc, WatchEvents across a restart, ReadClock against the test's own clocks and
the network verbs' refusals. Identity: test_agent_identity.py; the command line
and a real cut: test_agent_command.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from agent_harness import (
    FP,
    alive,
    child_argv,
    child_up,
    describe,
    grace,
    refusal,
    refused,
    serve_agent,
    wait_until,
)

from xenmca.agent.child import ChildSpec, proc_state
from xenmca.agent.service import EVENTS_OFFSET_HEADER
from xenmca.agent.v1 import agent_service_pb2 as pb

random.seed(16)


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


async def test_watch_events_until_now_catches_up_from_an_offset_and_ends(tmp_path: Path) -> None:
    # A caller whose live stream lagged: from the last offset it got (or the start the
    # header named), every line completed before the call, then the end of the stream.
    async with serve_agent(tmp_path) as agent:
        await child_up(agent)
        live = agent.stub.WatchEvents(pb.WatchEventsRequest(), metadata=agent.md())
        start = int(dict(await live.initial_metadata())[EVENTS_OFFSET_HEADER])
        assert start == agent.events_file.stat().st_size
        live.cancel()
        with agent.events_file.open("a") as out:
            out.write('{"kind": "a"}\n{"kind": "b"}\n{"kind": "torn')
        offsets = {}
        for from_offset in (start, start + 3):  # a line's start, or inside a line
            call = agent.stub.WatchEvents(
                pb.WatchEventsRequest(from_start=True, from_offset=from_offset, until_now=True),
                metadata=agent.md(),
            )
            got = [(m.offset, json.loads(m.json)["kind"]) async for m in call]
            offsets[from_offset] = got
        b_at = start + len('{"kind": "a"}\n')
        assert offsets[start] == [(start, "a"), (b_at, "b")]  # not the torn line
        assert offsets[start + 3] == [(b_at, "b")]


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
