"""The components' event loop (xenmca.rpc.event_loop): uvloop unless XENMCA_EVENT_LOOP
says asyncio; a bad value is a usage error, one line and exit 2."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
import uvloop

from xenmca import cli
from xenmca.rpc import event_loop
from xenmca.rpc.usage import UsageError


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_components_run_on_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.EVENT_LOOP_ENV, raising=False)
    assert event_loop.chosen() == "uvloop"
    assert event_loop.run(_loop_type) is uvloop.Loop


def test_asyncio_s_own_loop_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.EVENT_LOOP_ENV, "asyncio")
    assert event_loop.loop_factory() is None
    assert not issubclass(event_loop.run(_loop_type), uvloop.Loop)


def test_an_unknown_loop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.EVENT_LOOP_ENV, "trio")
    with pytest.raises(UsageError, match="XENMCA_EVENT_LOOP='trio': choose uvloop or asyncio"):
        event_loop.chosen()


def test_a_component_with_an_unknown_loop_exits_2_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "xenmca.cli", "serve", "pcpu", "--pcpu", "0",
         "--listen", "127.0.0.1:0"],
        env={**os.environ, event_loop.EVENT_LOOP_ENV: "trio"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "xenmca serve pcpu: error: XENMCA_EVENT_LOOP='trio': choose uvloop or asyncio"
    ]


def test_a_process_that_starts_children_runs_on_asyncio_s_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvloop forks with gRPC's fork handlers armed, which abort a child started while
    other threads are inside gRPC (a CI run lost a restarted pCPU host to it)."""
    monkeypatch.delenv(event_loop.EVENT_LOOP_ENV, raising=False)
    assert event_loop.loop_factory(spawns_processes=True) is None
    assert not issubclass(event_loop.run(_loop_type, spawns_processes=True), uvloop.Loop)


@pytest.mark.parametrize(
    "argv",
    [["agent", "--no-start", "--", "serve", "pcpu", "--pcpu", "0"], ["up", "--pcpus", "1"]],
    ids=["agent", "up"],
)
def test_the_agent_and_up_start_children_on_asyncio_s_loop(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    asked: list[bool] = []

    def run(main: object, *, spawns_processes: bool = False) -> int:
        asked.append(spawns_processes)
        return 0

    monkeypatch.setattr(event_loop, "run", run)
    assert cli.main(argv) == 0
    assert asked == [True]
