"""Overlapping faults on one target, with real processes: never two instances of a component.

`xenmca run` applies overlapping kills, pauses and partitions to dom0, the
coordinator and a pCPU host while this test scans /proc every 50 ms for each
component's command line (marked by its events file in the run's folder). At
no moment may a component have two processes; outside its kill windows it has
exactly one; it is restarted exactly once per overlap; and results.json tells
the merged faults from a failed heal. The run must stay valid.

The partitions need network namespaces (root); without them the same kills and
pauses run on loopback and the partition test is skipped with the reason. Last,
ManagedProcess on its own: start refuses while the process is alive, and a
restart waits until the old instance's port is free.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from xenmca.testbed.infra.netns import NetnsUnavailable, NetworkLayout
from xenmca.testbed.infra.processes import (
    AlreadyRunning,
    ManagedProcess,
    ProcessStartError,
    free_port_range,
)

pytestmark = pytest.mark.slow

COMPONENTS = ("pcpu-host0", "pcpu-host1", "xen", "dom0")

HEAD = """
name: overlap
description: overlapping kills, pauses and partitions on dom0, xen and pcpu-host1
seed: 11
pcpus: 4
pcpus_per_host: 2
duration_s: 8
vcpu0_pcpu: 0
throttle: {preset: fast}
drain_timeout_s: 60
workload:
  streams:
    - {type: cmc, rate: 2, pcpus: all}
    - {type: cpe, rate: 1, pcpus: [2]}
checks:
  lost: 0
  duplicates: 0
  cleared_before_logged: 0
faults:
"""

# Index in the list: what the scheduler must make of it.
KILLS_AND_PAUSES = [
    # dom0: three overlapping kills, one restart (at 3.5 s, #3's); a pause while down.
    "{at_s: 1.0, kind: kill, target: dom0, restart_after_s: 2.0}",  # 0 applied
    "{at_s: 1.5, kind: kill, target: dom0, restart_after_s: 0.5}",  # 1 merged
    "{at_s: 2.0, kind: pause, target: dom0, duration_s: 0.5}",  # 2 no-op: dom0 is down
    "{at_s: 2.5, kind: kill, target: dom0, restart_after_s: 1.0}",  # 3 merged, the last heal
    # dom0: two overlapping pauses, one SIGCONT (at 6.0 s).
    "{at_s: 4.5, kind: pause, target: dom0, duration_s: 1.0}",  # 4 applied
    "{at_s: 5.0, kind: pause, target: dom0, duration_s: 1.0}",  # 5 merged
    # xen: two overlapping kills, one restart; then a kill of the paused coordinator.
    "{at_s: 2.0, kind: kill, target: xen, restart_after_s: 1.0}",  # 6 applied
    "{at_s: 2.5, kind: kill, target: xen, restart_after_s: 1.0}",  # 7 merged
    "{at_s: 5.0, kind: pause, target: xen, duration_s: 1.0}",  # 8 applied, ended by #9
    "{at_s: 5.5, kind: kill, target: xen, restart_after_s: 0.5}",  # 9 applied
    # pcpu-host1 (pCPUs 2-3) under two names: overlapping kills, pauses; a kill left to heal_all.
    '{at_s: 1.0, kind: kill, target: "pcpu-host:1", restart_after_s: 1.0}',  # 10 applied
    '{at_s: 1.5, kind: kill, target: "pcpu:3", restart_after_s: 1.0}',  # 11 merged
    '{at_s: 5.5, kind: pause, target: "pcpu-host:1", duration_s: 0.5}',  # 12 applied
    '{at_s: 5.7, kind: pause, target: "pcpu:2", duration_s: 0.5}',  # 13 merged
    '{at_s: 7.0, kind: kill, target: "pcpu-host:1", restart_after_s: null}',  # 14 applied
    '{at_s: 7.5, kind: kill, target: "pcpu:2", restart_after_s: 3}',  # 15 merged, heal_all
    # an rpc rule on the coordinator that a later kill (#6) takes away: nothing to clear.
    "{at_s: 0.5, kind: rpc, target: xen, method: HypervisorService.GetStateInfo,"
    " action: fail, count: 1}",  # 16 applied
]
PARTITIONS = [
    # dom0 cut across its kills: it is restarted (3.5 s) in its namespace, still cut.
    "{at_s: 1.2, kind: partition, target: dom0, duration_s: 2.8}",  # 17 applied
    # xen: two overlapping cuts, one heal (at 5.5 s).
    "{at_s: 4.0, kind: partition, target: xen, duration_s: 1.0}",  # 18 applied
    "{at_s: 4.5, kind: partition, target: xen, duration_s: 1.0}",  # 19 merged
    # pcpu-host1: a cut while it is down (#14), merged with another; healed at the end.
    '{at_s: 7.2, kind: partition, target: "pcpu-host:1", duration_s: 5}',  # 20 applied
    '{at_s: 7.4, kind: partition, target: "pcpu:3", duration_s: 5}',  # 21 merged
]
MERGED_KILLS = {1: 0, 3: 0, 7: 6, 11: 10, 15: 14}  # merged kill -> the kill it joined
MERGED_PAUSES = {5: 4, 13: 12}
MERGED_CUTS = {19: 18, 21: 20}
# Processes each component must have had: one per start (restarts are once per overlap).
INSTANCES = {"pcpu-host0": 1, "pcpu-host1": 3, "xen": 3, "dom0": 2}


def _netns_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return f"network namespaces need root (running as uid {os.geteuid()})"
    probe = NetworkLayout(["probe"])
    try:
        probe.create()
    except NetnsUnavailable as exc:
        return str(exc)
    finally:
        probe.destroy()
    return None


@dataclass
class Sampler:
    """Scans /proc every `every` seconds for each component's processes in one run folder."""

    out: Path
    every: float = 0.05
    samples: list[tuple[int, dict[str, list[int]]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def markers(self) -> dict[str, str]:
        return {name: f"--events {self.out}/events-{name}.jsonl" for name in COMPONENTS}

    def scan(self) -> dict[str, list[int]]:
        markers = self.markers()
        found: dict[str, list[int]] = {name: [] for name in COMPONENTS}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                    cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # gone meanwhile
            if "xenmca.cli" not in cmdline:
                continue
            for name, marker in markers.items():
                if marker in cmdline:
                    found[name].append(int(entry.name))
        return found

    def loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic_ns(), self.scan()))
            self._stop.wait(self.every)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        thread = threading.Thread(target=self.loop, name="proc-sampler", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()


def run_scenario(tmp_path: Path, faults: list[str], network: str) -> tuple[dict[str, Any], Sampler]:
    scenario = tmp_path / "overlap.yaml"
    text = HEAD + "".join(f"  - {fault}\n" for fault in faults)
    if network == "netns":
        text += "network: netns\n"
    scenario.write_text(text)
    out = tmp_path / "out"
    sampler = Sampler(out)
    with sampler.running():
        command = ["run", str(scenario), "--out", str(out), "--json", "--no-progress"]
        done = subprocess.run(
            [sys.executable, "-m", "xenmca.cli", *command],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    return results, sampler


def run_bounds(out: Path) -> tuple[int, int]:
    """CLOCK_MONOTONIC ns of the run's start and end (as every process's events use)."""
    start = end = 0
    with open(out / "events.jsonl", encoding="utf-8") as handle:
        for line in handle:
            event = json.loads(line)
            if event.get("kind") == "run_started":
                start = int(event["t_mono_ns"])
            elif event.get("kind") == "run_finished":
                end = int(event["t_mono_ns"])
    assert start and end
    return start, end


def check_instances(results: dict[str, Any], sampler: Sampler) -> None:
    """At most one process per component at every sample; exactly one outside its kill windows."""
    assert len(sampler.samples) > 100, "the sampler hardly ran"
    seen: dict[str, set[int]] = {name: set() for name in COMPONENTS}
    for t_ns, found in sampler.samples:
        for name, pids in found.items():
            assert len(pids) <= 1, f"{name} had {len(pids)} processes {pids} at {t_ns}"
            seen[name].update(pids)
    assert {name: len(pids) for name, pids in seen.items()} == INSTANCES
    # Exactly one from the first sample that shows the whole testbed to the end of the run,
    # except around that component's kills (a restarted instance needs a moment to appear).
    start_ns, end_ns = run_bounds(sampler.out)
    margin = 250_000_000
    down: dict[str, list[tuple[int, int]]] = {name: [] for name in COMPONENTS}
    for fault in results["faults"]:
        if fault["kind"] == "kill":
            name = process_name(fault["target"])
            window = (
                start_ns + int(fault["start_s"] * 1e9) - margin,
                start_ns + int(fault["end_s"] * 1e9) + margin,
            )
            down[name].append(window)
    up = [t for t, found in sampler.samples if all(found.values())]
    assert up, "the whole testbed was never seen up"
    checked = 0
    for t_ns, found in sampler.samples:
        if not up[0] <= t_ns <= end_ns:
            continue
        for name, pids in found.items():
            if not any(a <= t_ns <= b for a, b in down[name]):
                assert len(pids) == 1, f"{name} had no process at {t_ns} outside its kills"
                checked += 1
    assert checked > 4 * 50
    assert not any(sampler.scan().values()), "processes left after the run"


def process_name(target: str) -> str:
    if target.startswith("pcpu:"):
        return f"pcpu-host{int(target.split(':')[1]) // 2}"
    return target.replace("pcpu-host:", "pcpu-host")


def check_records(results: dict[str, Any], faults: list[str], merged: dict[int, int]) -> None:
    """Every fault recorded once; merged and no-op ones told apart from a failed heal."""
    assert results["valid"] is True, results["checks"]
    records = results["records"]
    assert records["lost"] == 0 and records["duplicates"] == 0
    assert records["cleared_before_logged"] == 0
    rows = {row["fault"]: row for row in results["faults"]}
    assert sorted(rows) == list(range(len(faults))), "a fault record is missing"
    for number, row in rows.items():
        assert row["outcome"] in ("applied", "merged", "no-op"), row
        assert "failed" not in row["effect"] and "could not apply" not in row["effect"], row
        if number in merged:
            first = merged[number]
            assert row["outcome"] == "merged", row
            assert row["effect"].startswith("no-op: "), row
            assert f"since fault #{first}" in row["effect"], row
            assert first in row["overlapped_by"], row
            assert first in rows and number in rows[first]["overlapped_by"]
            assert row["end_s"] == rows[first]["end_s"]  # one window, one heal
            assert row["ended_by"] == rows[first]["ended_by"]
    assert rows[2]["outcome"] == "no-op" and rows[2]["effect"] == (
        "no-op: dom0 down since fault #0, nothing to pause"
    )
    assert rows[2]["start_s"] == rows[2]["end_s"]
    # dom0 came back once, at the last heal of its three kills (#3's, at 3.5 s).
    assert rows[0]["ended_by"] == 3 and rows[0]["end_s"] >= 3.5
    assert "healed once for overlapping faults #0, #1, #3" in rows[0]["effect"]
    assert rows[4]["ended_by"] == rows[5]["ended_by"] == 5
    # The paused coordinator was killed: the pause ended there, the kill restarted it.
    assert rows[8]["ended_by"] == 9 and "ended by kill #9" in rows[8]["effect"]
    assert "while paused by #8" in rows[9]["effect"]
    # A kill left down until the end was healed by heal_all, once, with the kill merged into it.
    assert rows[14]["ended_by"] == rows[15]["ended_by"]
    assert rows[14]["end_s"] >= results["workload_s"] - 0.5
    # The rule went with the coordinator that #6 killed: not cleared on its successor.
    assert rows[16]["ended_by"] == 6 and "no rule to clear" in rows[16]["effect"]


def test_overlapping_kills_and_pauses_never_run_two_instances(tmp_path: Path) -> None:
    results, sampler = run_scenario(tmp_path, KILLS_AND_PAUSES, "loopback")
    check_instances(results, sampler)
    check_records(results, KILLS_AND_PAUSES, {**MERGED_KILLS, **MERGED_PAUSES})


_NETNS = _netns_unavailable_reason()


@pytest.mark.skipif(_NETNS is not None, reason=f"network namespaces: {_NETNS}")
def test_overlapping_partitions_kills_and_pauses_in_namespaces(tmp_path: Path) -> None:
    faults = KILLS_AND_PAUSES + PARTITIONS
    results, sampler = run_scenario(tmp_path, faults, "netns")
    check_instances(results, sampler)
    check_records(results, faults, {**MERGED_KILLS, **MERGED_PAUSES, **MERGED_CUTS})
    rows = {row["fault"]: row for row in results["faults"]}
    # dom0 was restarted inside its cut namespace; the cut healed later, once.
    assert "still cut by fault #17" in rows[0]["effect"]
    assert rows[17]["outcome"] == "applied" and rows[17]["end_s"] >= 4.0
    assert "(dom0 itself down)" in rows[17]["effect"]  # cut while its process was down
    assert rows[18]["ended_by"] == rows[19]["ended_by"] == 19
    assert "(pcpu-host1 itself down)" in rows[20]["effect"]


# -- ManagedProcess: one instance, and a restart waits for the old one's port ---------------


async def test_a_component_is_never_started_twice_and_a_restart_waits_for_its_port(
    tmp_path: Path,
) -> None:
    port = free_port_range(1)
    ready = tmp_path / "ready.json"
    argv = ["serve", "pcpu", "--pcpus", "0-0", "--host", "127.0.0.1", "--base-port", str(port)]
    host = ManagedProcess(
        "pcpu-host0",
        [*argv, "--ready-file", str(ready)],
        tmp_path / "pcpu-host0.log",
        ready_file=ready,
        listen_host="127.0.0.1",
        ports=(port,),
    )
    try:
        await host.start()
        await host.wait_ready()
        first = host.pid
        with pytest.raises(AlreadyRunning, match=r"already running \(pid \d+\)"):
            await host.start()
        host.signal(signal.SIGSTOP)  # a paused process is alive too
        with pytest.raises(AlreadyRunning):
            await host.start()
        assert host.pid == first and host.starts == 1
        await host.kill()
        # Something else holds the port: the restart waits for it, then gives up naming it.
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            with pytest.raises(ProcessStartError, match=rf"ports \[{port}\] .* still in use"):
                await host.start(port_wait=0.3)
            assert host.starts == 1
            loop = asyncio.get_running_loop()
            loop.call_later(0.3, squatter.close)
            await host.start()
        assert 0.2 < host.last_start_wait_s < 2.0
        await host.wait_ready()
        assert host.starts == 2 and host.pid != first and host.running
        # A restart right after a kill -9 finds the port free at once (the kernel closed it).
        await host.kill()
        await host.start()
        await host.wait_ready()
        assert host.last_start_wait_s < 0.5
    finally:
        await host.stop()
