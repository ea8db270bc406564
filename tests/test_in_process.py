"""Scenarios in one process on virtual time: the kernel's minute-long timings in seconds.

The components are the real ones, configured from the launcher's own command
lines; only the clock is virtual. These runs stand in the fast suite for what
real-time runs would take minutes to show, and the real-process runs of the
built-in scenarios stay under the `slow` marker.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from pathlib import Path

import pytest

from xenmca.testbed.check.checkers import overall_valid, run_checks
from xenmca.testbed.run.in_process import NotInProcess, check_in_process, run_in_process
from xenmca.testbed.run.virtual_clock import VirtualClock
from xenmca.testbed.scenario.loader import load_builtin, parse_scenario_text

# linux-ia64: a storm is 5 CMC interrupts within 1 s; a throttled CMC line is polled
# every 60 s (mca.c CMC_POLL_INTERVAL); CPE lines without a vector are polled between
# 120 s and 900 s (MIN/MAX_CPE_POLL_INTERVAL), halving on records, doubling when empty.
KERNEL_TIMINGS = """
name: kernel-timings
seed: 11
pcpus: 4
duration_s: 1500
# dom0 polls CPE at most every 900 s: the drain waits for two of its polls.
drain_timeout_s: 1800
throttle:
  preset: linux-ia64
  settings: {cpe_can_interrupt: false}
dom0: {cpe_poll_min_s: 120, cpe_poll_max_s: 900}
workload:
  streams:
    - {type: cmc, rate: 0.01, pcpus: all}
    - {type: cpe, rate: 0.004, pcpus: all}
  storms:
    - {type: cmc, pcpus: [1], rate: 20, start_s: 300, duration_s: 5}
checks:
  # CPE lines without a vector poll for ever, by design: not a line left behind, and
  # not a quiet line throttled by another's storm.
  all_lines_back_to_interrupt: false
  isolation: false
  expect_transitions:
    - {pcpu: 1, type: cmc, mode: polling}
    - {pcpu: 1, type: cmc, mode: interrupt}
"""


def _poll_gaps(events: list[dict], pcpu: int, record_type: str) -> list[float]:
    times = [
        e["t_mono_ns"] / 1e9
        for e in events
        if e.get("component") == "xen"
        and e.get("kind") == "poll"
        and e.get("pcpu") == pcpu
        and str(e.get("type")).upper() == record_type
    ]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


async def test_the_kernels_poll_intervals_run_in_seconds_on_virtual_time(tmp_path: Path) -> None:
    scenario = parse_scenario_text(KERNEL_TIMINGS)
    clock = VirtualClock()
    data = await run_in_process(scenario, tmp_path / "run", clock)
    checks = run_checks(data)
    assert overall_valid(checks) is True, [c.as_dict() for c in checks if c.status != "pass"]
    assert data.clock == "virtual" and data.drained
    assert len(data.log) == data.requested > 100
    assert clock.elapsed >= scenario.duration_s

    cmc_gaps = _poll_gaps(data.events, 1, "CMC")
    assert cmc_gaps, "the storm's line was never polled"
    # Each poll is due 60 s after the last one ended; a poll whose calls were in flight
    # while the clock jumped ends late by one jump (at most one look, 1.5 s here).
    assert abs(statistics.median(cmc_gaps) - 60.0) < 0.5, cmc_gaps
    assert all(59.5 < gap < 62.0 for gap in cmc_gaps), cmc_gaps

    cpe_gaps = [gap for pcpu in range(4) for gap in _poll_gaps(data.events, pcpu, "CPE")]
    assert cpe_gaps
    assert all(119.5 <= gap <= 902.0 for gap in cpe_gaps), cpe_gaps
    assert max(cpe_gaps) > 120.5, "an empty CPE poll never doubled the interval"


async def test_a_builtin_with_rpc_faults_runs_valid_in_process(tmp_path: Path) -> None:
    scenario = load_builtin("lost-ipi-replies")
    data = await run_in_process(scenario, tmp_path / "run")
    checks = run_checks(data)
    assert overall_valid(checks) is True, [c.as_dict() for c in checks if c.status != "pass"]
    assert len(data.log) == data.requested
    assert [f.outcome for f in data.faults] == ["applied"] * len(scenario.faults)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("pcpu-host-crash", "faults[0] is a kill fault"),
        ("partition", "needs real processes"),
    ],
)
def test_what_needs_processes_is_refused_in_one_line(name: str, words: str) -> None:
    with pytest.raises(NotInProcess, match="needs real processes") as caught:
        check_in_process(load_builtin(name))
    assert words in str(caught.value) and "\n" not in str(caught.value)


async def test_virtual_time_jumps_to_each_deadline_in_order() -> None:
    clock = VirtualClock(start=100.0, quiet_s=0.001)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    advancer = asyncio.create_task(clock.run())
    try:
        await asyncio.wait_for(
            asyncio.gather(sleeper("late", 300.0), sleeper("early", 2.0)), timeout=10
        )
    finally:
        advancer.cancel()
    assert woke == [("early", 102.0), ("late", 400.0)]
    assert clock.jumps == 2


async def test_time_stands_still_while_work_is_in_flight() -> None:
    clock = VirtualClock(start=0.0, quiet_s=0.001)
    advancer = asyncio.create_task(clock.run())
    try:
        with clock.busy():
            sleeping = asyncio.create_task(clock.sleep(5.0))
            await asyncio.sleep(0.05)  # real time: many quiet windows pass
            assert not sleeping.done() and clock.elapsed == 0.0
        await asyncio.wait_for(sleeping, timeout=10)
        assert clock.elapsed == 5.0
    finally:
        advancer.cancel()


async def test_time_stands_still_while_dom0_commits(tmp_path: Path, monkeypatch) -> None:
    # A commit whose fsync is slow (a busy disk) runs on the log's thread, away from the
    # clock: without LogStore holding the clock busy, virtual time would jump meanwhile.
    from xenmca.dom0 import log_store
    from xenmca.record.v1 import record_pb2

    real_commit = log_store._commit

    def slow_commit(*args: object) -> bool:
        time.sleep(0.05)  # real time on the log's thread: many quiet windows
        return real_commit(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(log_store, "_commit", slow_commit)
    clock = VirtualClock(start=0.0, quiet_s=0.001)
    store = await log_store.LogStore.open(tmp_path / "dom0.sqlite", clock)
    advancer = asyncio.create_task(clock.run())
    sleeping = asyncio.create_task(clock.sleep(60.0))
    try:
        record = record_pb2.ErrorRecord(pcpu=1, record_id=7, type=record_pb2.RECORD_TYPE_CMC)
        assert await store.commit(record) is True
        assert not sleeping.done() and clock.elapsed == 0.0
        await asyncio.wait_for(sleeping, timeout=10)  # idle again: the clock moves on
        assert clock.elapsed == 60.0
    finally:
        advancer.cancel()
        await store.close()
