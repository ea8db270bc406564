"""`xenmca agent` as a real process over a real `serve pcpu` child, and a real link cut.

Bad command lines exit 2 with one line; SIGTERM to the agent stops its child
gracefully; SIGKILL to the agent takes its xenmca child down with it; as root,
CutNetwork's code takes a device down inside a network namespace and heals it on time.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from xenmca.agent.child import proc_state
from xenmca.rpc.events import read_events

AGENT = [sys.executable, "-m", "xenmca.cli", "agent"]


def wait_for(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def gone(pid: int) -> bool:
    return proc_state(pid) in (None, "Z")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--listen", "127.0.0.1:0"], "command line after --"),
        (["--listen", "nope", "--", "serve", "pcpu", "--pcpu", "0"], "not HOST:PORT"),
        (["--stop-grace", "0", "--", "serve", "pcpu", "--pcpu", "0"], "--stop-grace"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    result = subprocess.run([*AGENT, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xenmca agent: error: "), lines
    assert says in lines[0]


@contextmanager
def running_agent(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """An agent over `serve pcpu --pcpus 0-1`: (the agent, its child's pid, child events)."""
    ready = tmp_path / "agent.json"
    events = tmp_path / "pcpu.jsonl"
    agent = subprocess.Popen(
        [
            *AGENT, "--listen", "127.0.0.1:0", "--ready-file", str(ready),
            "--events", str(tmp_path / "agent.jsonl"), "--stop-grace", "5",
            "--", "serve", "pcpu", "--pcpus", "0-1", "--base-port", "0", "--events", str(events),
        ],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: ready.exists() or agent.poll() is not None)
        assert agent.poll() is None, "the agent did not start"
        child = json.loads(ready.read_text())["child_pid"]
        wait_for(lambda: events.exists() and "host_started" in events.read_text())
        yield agent, child, events
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(10)


def test_sigterm_to_the_agent_stops_the_child_gracefully(tmp_path: Path) -> None:
    with running_agent(tmp_path) as (agent, child, events):
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(30) == 0
        assert gone(child)
        assert [e["kind"] for e in read_events(events)][-1] == "host_stopped"
        kinds = [e["kind"] for e in read_events(tmp_path / "agent.jsonl")]
        assert kinds[:2] == ["child_started", "agent_started"]
        assert kinds[-2:] == ["child_stopping", "child_exited"]


def test_a_killed_agent_takes_its_child_down(tmp_path: Path) -> None:
    with running_agent(tmp_path) as (agent, child, _):
        agent.kill()
        agent.wait(10)
        wait_for(lambda: gone(child))


NETNS_CHECK = """
import asyncio, subprocess, sys, time
from xenmca.agent.network import NetworkControl

def up():
    flags = subprocess.run(['ip', '-o', 'link', 'show', 'dev', 'eth0'],
                           capture_output=True, text=True, check=True).stdout
    return ',UP' in flags.split('>')[0] or '<UP' in flags.split('>')[0]

async def main():
    network = NetworkControl('eth0')
    assert up()
    state = await network.cut(0.3)
    assert state.cut and not up()
    while network.state().cut:
        await asyncio.sleep(0.02)
    assert up()
    await network.cut(30)
    await network.heal()
    assert up() and not network.state().cut
    print('ok')

asyncio.run(main())
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="a real cut needs root and network namespaces")
def test_a_real_cut_in_a_network_namespace_heals_on_time() -> None:
    namespace = f"xm-t{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", namespace], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")
    try:
        for words in (
            ["link", "add", "eth0", "type", "veth", "peer", "name", "peer0"],
            ["link", "set", "peer0", "up"],
            ["link", "set", "eth0", "up"],
        ):
            subprocess.run(["ip", "-n", namespace, *words], check=True)
        result = subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", NETNS_CHECK],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    finally:
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
