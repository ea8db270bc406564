"""Overlapping faults on one target: the state model alone, then the scheduler on fake processes."""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from xenmca.rpc.events import EventLog
from xenmca.testbed.run.data import FaultRecord
from xenmca.testbed.run.fault_schedule import FaultScheduler
from xenmca.testbed.run.fault_targets import FaultTargets, Hold, Outcome
from xenmca.testbed.scenario.model import Fault

# -- the model -------------------------------------------------------------------------


def test_a_lone_kill_acts_and_its_heal_restarts() -> None:
    model = FaultTargets()
    applied = model.apply(0, "kill", "dom0")
    assert (applied.act, applied.outcome, applied.overlaps) == (True, Outcome.APPLIED, ())
    assert model.state("dom0").describe() == "down"
    healed = model.heal(0)
    assert healed.act and healed.group == (0,)
    assert model.state("dom0").up and model.holding() == []


def test_a_kill_of_a_down_component_is_merged_and_it_comes_back_once_at_the_last_heal() -> None:
    model = FaultTargets()
    assert model.apply(0, "kill", "dom0").act
    merged = model.apply(1, "kill", "dom0")
    assert not merged.act and merged.outcome is Outcome.MERGED
    assert merged.note == "no-op: dom0 already down since fault #0" and merged.overlaps == (0,)
    third = model.apply(2, "kill", "dom0")
    assert third.overlaps == (0, 1)
    # The heals come in any order; only the last one restarts.
    first_heal = model.heal(0)
    assert not first_heal.act and first_heal.waiting_for == (1, 2)
    assert not model.heal(2).act
    assert model.state("dom0").describe() == "down"
    last = model.heal(1)
    assert last.act and last.group == (0, 1, 2)
    assert model.state("dom0").up


def test_a_heal_of_a_fault_holding_nothing_does_nothing() -> None:
    model = FaultTargets()
    model.apply(0, "kill", "xen")
    assert model.heal(0).act
    assert model.heal(0) == model.heal(7)  # healed already, or never applied
    assert not model.heal(0).act
    model.apply(1, "kill", "xen")
    with pytest.raises(ValueError, match="already applied"):
        model.apply(1, "kill", "xen")


def test_pauses_merge_and_resume_once() -> None:
    model = FaultTargets()
    assert model.apply(3, "pause", "pcpu-host1").act
    merged = model.apply(4, "pause", "pcpu-host1")
    assert merged.outcome is Outcome.MERGED and "already paused since fault #3" in merged.note
    assert model.state("pcpu-host1").describe() == "paused"
    assert not model.heal(3).act
    healed = model.heal(4)
    assert healed.act and healed.group == (3, 4)


def test_a_pause_of_a_down_component_is_a_no_op_and_its_restart_is_not_paused() -> None:
    model = FaultTargets()
    model.apply(0, "kill", "dom0")
    paused = model.apply(1, "pause", "dom0")
    assert (paused.act, paused.outcome) == (False, Outcome.NO_OP)
    assert paused.note == "no-op: dom0 down since fault #0, nothing to pause"
    assert paused.overlaps == (0,)
    assert not model.heal(1).act  # holds nothing
    assert model.heal(0).act
    assert model.state("dom0").describe() == "up"


def test_a_kill_of_a_paused_component_is_a_kill_and_ends_the_pauses() -> None:
    model = FaultTargets()
    model.apply(0, "pause", "xen")
    model.apply(1, "pause", "xen")
    assert not model.heal(0).act  # 0's time is up, 1 still holds it
    killed = model.apply(2, "kill", "xen")
    assert killed.act and killed.outcome is Outcome.APPLIED
    assert killed.ended == (0, 1) and killed.overlaps == (0, 1)
    assert model.state("xen").describe() == "down"
    assert not model.heal(1).act  # nothing left to resume
    assert model.heal(2).act
    assert model.state("xen").up


def test_cuts_merge_and_are_independent_of_the_process() -> None:
    model = FaultTargets()
    assert model.apply(0, "partition", "dom0").act
    assert model.apply(1, "kill", "dom0").act  # a cut host's process can still be killed
    merged = model.apply(2, "partition", "dom0")
    assert merged.outcome is Outcome.MERGED and "already cut off since fault #0" in merged.note
    assert model.state("dom0").describe() == "down, cut"
    assert model.heal(1).act  # restarted in its namespace, which stays cut
    assert model.state("dom0").describe() == "up, cut"
    assert not model.heal(0).act
    assert model.heal(2).group == (0, 2)
    assert model.state("dom0").describe() == "up"


def test_a_partition_of_a_down_component_is_applied() -> None:
    model = FaultTargets()
    model.apply(0, "kill", "pcpu-host0")
    cut = model.apply(1, "partition", "pcpu-host0")
    assert cut.act and cut.outcome is Outcome.APPLIED
    assert model.holds_of(1) == ("pcpu-host0", Hold.CUT)


def test_targets_do_not_share_state() -> None:
    model = FaultTargets()
    model.apply(0, "kill", "pcpu-host0")
    assert model.apply(1, "kill", "pcpu-host1").act
    assert model.apply(2, "pause", "xen").act
    assert model.holding() == [0, 1, 2]


@pytest.mark.parametrize("seed", range(40))
def test_random_overlaps_act_once_per_hold_and_leave_everything_up(seed: int) -> None:
    """Whatever the order, each hold is taken and released the same number of times."""
    rng = random.Random(seed)
    model = FaultTargets()
    targets = ["dom0", "xen", "pcpu-host0"]
    taken: dict[tuple[str, Hold], int] = {}
    released: dict[tuple[str, Hold], int] = {}
    live: list[int] = []
    for number in range(60):
        if live and rng.random() < 0.45:
            fault = live.pop(rng.randrange(len(live)))
            held = model.holds_of(fault)
            healed = model.heal(fault)
            if healed.act:
                assert held is not None
                released[held] = released.get(held, 0) + 1
            continue
        kind = rng.choice(["kill", "pause", "partition"])
        target = rng.choice(targets)
        state = model.state(target)
        assert not (state.held(Hold.DOWN) and state.held(Hold.PAUSED))
        applied = model.apply(number, kind, target)
        hold = model.holds_of(number)
        if applied.act:
            assert hold is not None
            taken[hold] = taken.get(hold, 0) + 1
            if applied.ended:  # the kill took the paused process away: that pause is over
                assert all(model.holds_of(ended) is None for ended in applied.ended)
                key = (target, Hold.PAUSED)
                released[key] = released.get(key, 0) + 1
        live.append(number)
    for fault in live:
        held = model.holds_of(fault)
        if model.heal(fault).act:
            assert held is not None
            released[held] = released.get(held, 0) + 1
    assert taken == released
    assert all(model.state(t).describe() == "up" for t in targets)
    assert model.holding() == []


# -- the scheduler, on fake processes -----------------------------------------------------

_pids = itertools.count(1000)


@dataclass
class FakeProcess:
    """Just enough of ManagedProcess: at most one instance, and a log of what was done."""

    name: str
    log: list[str]
    pid: int | None = None
    stopped: bool = False
    starts: int = 0
    last_start_wait_s: float = 0.0
    alive: bool = field(default=False)

    @property
    def running(self) -> bool:
        return self.alive

    async def start(self) -> None:
        assert not self.alive, f"{self.name} started twice"
        await asyncio.sleep(0.02)  # a restart takes time: faults may arrive meanwhile
        self.alive, self.pid, self.stopped = True, next(_pids), False
        self.starts += 1
        self.log.append(f"start {self.name}")

    async def wait_ready(self) -> None:
        await asyncio.sleep(0.01)

    async def kill(self) -> None:
        if self.alive:
            self.log.append(f"kill {self.name}")
        self.alive = False

    async def pause(self) -> None:
        if self.alive:
            self.stopped = True
            self.log.append(f"stop {self.name}")

    async def resume(self) -> None:
        if self.alive:
            self.stopped = False
            self.log.append(f"cont {self.name}")


class FakeBed:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.pcpu_hosts = [FakeProcess(f"pcpu-host{i}", self.log) for i in range(2)]
        self.named = {p.name: p for p in [*self.pcpu_hosts]}
        for name in ("xen", "dom0"):
            self.named[name] = FakeProcess(name, self.log)
        self.cut_hosts: set[str] = set()

        class Spec:
            pcpus_per_host = 2

        self.spec = Spec()

    async def start(self) -> None:
        for process in self.named.values():
            await process.start()
        self.log.clear()

    def process(self, name: str) -> FakeProcess:
        return self.named[name]

    def host_of(self, pcpu: int) -> FakeProcess:
        return self.pcpu_hosts[pcpu // 2]

    async def cut(self, host: str, for_s: float | None = None) -> None:
        assert host not in self.cut_hosts, f"{host} cut twice"
        self.cut_hosts.add(host)
        self.log.append(f"cut {host}")

    async def heal(self, host: str) -> None:
        assert host in self.cut_hosts, f"{host} healed while up"
        self.cut_hosts.discard(host)
        self.log.append(f"heal {host}")


async def run_schedule(
    tmp_path: Path, faults: list[Fault], workload_s: float
) -> tuple[FakeBed, dict[int, FaultRecord]]:
    bed = FakeBed()
    await bed.start()
    events = EventLog("runner", tmp_path / "events.jsonl")
    scheduler = FaultScheduler(bed, tuple(faults), events)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    run = asyncio.create_task(scheduler.run(loop.time()))
    await asyncio.sleep(workload_s)
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    await scheduler.heal_all()
    events.close()
    assert len(scheduler.records) == len(faults)  # no record lost
    records = {r.fault: r for r in scheduler.records if r.fault is not None}
    assert set(records) == set(range(len(faults)))
    assert all(p.alive and not p.stopped for p in bed.named.values())
    assert not bed.cut_hosts
    return bed, records


def kill(at: float, target: str, after: float | None) -> Fault:
    return Fault(at, "kill", target, {"restart_after_s": after})


def pause(at: float, target: str, duration: float) -> Fault:
    return Fault(at, "pause", target, {"duration_s": duration})


def cut(at: float, target: str, duration: float) -> Fault:
    return Fault(at, "partition", target, {"duration_s": duration})


async def test_overlapping_kills_restart_once_when_the_latest_says_so(tmp_path: Path) -> None:
    faults = [kill(0.0, "dom0", 0.3), kill(0.1, "dom0", 0.05), kill(0.15, "dom0", 0.1)]
    bed, records = await run_schedule(tmp_path, faults, 0.6)
    assert bed.log == ["kill dom0", "start dom0"]
    first, second, third = records[0], records[1], records[2]
    assert first.outcome == "applied" and first.effect.startswith("killed pid ")
    assert second.outcome == third.outcome == "merged"
    assert second.effect.startswith("no-op: dom0 already down since fault #0")
    assert {r.ended_by for r in records.values()} == {0}  # 0's heal (at 0.3 s) was the last
    assert first.overlapped_by == (1, 2) and second.overlapped_by == (0, 2)
    assert len({r.end_ns for r in records.values()}) == 1  # one window: down until the restart
    assert "healed once for overlapping faults #0, #1, #2" in first.effect
    assert all("failed" not in r.effect for r in records.values())


async def test_a_kill_that_stays_down_is_merged_with_later_kills_until_heal_all(
    tmp_path: Path,
) -> None:
    faults = [kill(0.0, "xen", None), kill(0.1, "xen", 0.05)]
    bed, records = await run_schedule(tmp_path, faults, 0.3)
    assert bed.log == ["kill xen", "start xen"]
    assert records[1].outcome == "merged" and records[0].ended_by == 0


async def test_pause_during_kill_is_a_no_op_and_kill_during_pause_ends_it(tmp_path: Path) -> None:
    faults = [
        kill(0.0, "dom0", 0.2),
        pause(0.05, "dom0", 0.5),  # dom0 is down: nothing to pause
        pause(0.3, "xen", 0.5),
        pause(0.35, "xen", 0.05),
        kill(0.45, "xen", 0.1),  # kills the paused coordinator
    ]
    bed, records = await run_schedule(tmp_path, faults, 1.0)
    assert bed.log == ["kill dom0", "start dom0", "stop xen", "kill xen", "start xen"]
    assert records[1].outcome == "no-op" and records[1].overlapped_by == (0,)
    assert records[1].effect == "no-op: dom0 down since fault #0, nothing to pause"
    assert records[1].end_ns == records[1].start_ns
    assert records[2].outcome == "applied" and records[3].outcome == "merged"
    for paused in (records[2], records[3]):
        assert paused.ended_by == 4 and 4 in paused.overlapped_by
        assert "ended by kill #4: the paused process was killed" in paused.effect
    assert records[4].effect.startswith("killed pid ")
    assert "while paused by #2, #3" in records[4].effect


async def test_overlapping_cuts_heal_once_and_a_restart_stays_cut(tmp_path: Path) -> None:
    faults = [
        cut(0.0, "pcpu:3", 0.4),  # pcpu:3 and pcpu-host:1 are the same host
        kill(0.05, "pcpu-host:1", 0.1),
        cut(0.1, "pcpu-host:1", 0.1),
    ]
    bed, records = await run_schedule(tmp_path, faults, 0.7)
    assert bed.log == ["cut pcpu-host1", "kill pcpu-host1", "start pcpu-host1", "heal pcpu-host1"]
    assert records[2].outcome == "merged" and records[2].overlapped_by == (0,)
    assert "still cut by fault #0" in records[1].effect
    assert records[0].ended_by == records[2].ended_by == 0


async def test_heal_all_heals_each_overlap_once(tmp_path: Path) -> None:
    faults = [
        kill(0.0, "dom0", None),
        kill(0.05, "dom0", None),
        pause(0.0, "pcpu-host:0", 10),
        pause(0.05, "pcpu:1", 10),
        cut(0.0, "xen", 10),
        cut(0.05, "xen", 10),
    ]
    bed, records = await run_schedule(tmp_path, faults, 0.2)
    assert sorted(bed.log) == sorted(
        ["kill dom0", "start dom0", "stop pcpu-host0", "cont pcpu-host0", "cut xen", "heal xen"]
    )
    assert [records[i].outcome for i in range(6)] == ["applied", "merged"] * 3
