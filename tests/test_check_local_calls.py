"""The local-calls check: a SAL call is local exactly when vCPU0 runs on its pCPU.

The checker over hand-built events, then the real testbed: vCPU0 moves during a
run (`vcpu0_moves`), and a coordinator that ignores the moves (the test-only
broken rule `stale-placement`) is caught.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_checkers_data import MS, START_NS, event, synthetic_run

from xenmca.testbed.check.checkers import run_checks
from xenmca.testbed.check.local_calls import check_local_calls
from xenmca.testbed.run.data import RunData


def t(ms: float) -> int:
    return START_NS + int(ms * MS)


def run_with(*extra: dict) -> RunData:
    data = synthetic_run()
    events = [
        e
        for e in data.events
        if e["kind"] not in ("get_local", "get_ipi", "clear_local", "clear_ipi")
    ]
    events += [event(t(0), "xen", "coordinator_started", pcpus=2, vcpu0_pcpu=0), *extra]
    return dataclasses.replace(data, events=sorted(events, key=lambda e: e["t_mono_ns"]))


def call(at_ms: float, kind: str, pcpu: int, ms: float = 1.0, **fields: object) -> dict:
    return event(t(at_ms), "xen", kind, pcpu=pcpu, type="CMC", ms=ms, attempts=1, **fields)


def test_calls_follow_the_placement_and_its_moves() -> None:
    data = run_with(
        call(10, "get_local", 0),
        call(11, "clear_local", 0, record_id=1),
        call(12, "get_ipi", 1),
        event(t(20), "xen", "vcpu_placement", previous=0, pcpu=1),
        call(30, "get_ipi", 0),
        call(31, "get_local", 1),
    )
    check = check_local_calls(data)
    assert (check.status, check.observed, check.records) == ("pass", 0, ())
    assert "5 SAL calls" in check.detail and "2 placements" in check.detail


def test_a_call_made_the_wrong_way_is_named() -> None:
    data = run_with(
        event(t(20), "xen", "vcpu_placement", previous=0, pcpu=1),
        call(30, "get_local", 0),
        call(31, "clear_local", 0, record_id=7),
        call(32, "get_ipi", 1),
    )
    check = check_local_calls(data)
    assert (check.status, check.observed) == ("fail", 3)
    assert [(r.pcpu, r.record_id) for r in check.records] == [(0, None), (0, 7), (1, None)]
    assert check.records[1].note == "CLEAR made locally while vCPU0 ran on pCPU 1"
    assert check.records[2].note == "GET made by IPI while vCPU0 ran on pCPU 1"


def test_a_move_during_the_call_excuses_either_label() -> None:
    moved = event(t(20), "xen", "vcpu_placement", previous=0, pcpu=1)
    # Started at 15 ms (vCPU0 on 0), ended at 25 ms (on 1): local or IPI is right for both.
    for kind in ("get_local", "get_ipi"):
        assert check_local_calls(run_with(moved, call(25, kind, 0, ms=10))).status == "pass"


def test_a_restarted_coordinator_starts_from_its_configured_placement() -> None:
    data = run_with(
        event(t(20), "xen", "vcpu_placement", previous=0, pcpu=1),
        event(t(40), "xen", "coordinator_started", pcpus=2, vcpu0_pcpu=0),
        call(50, "get_local", 0),
    )
    assert check_local_calls(data).status == "pass"


def test_it_is_part_of_the_default_checks_and_unknown_without_events() -> None:
    data = run_with(call(10, "get_ipi", 0))
    assert next(c for c in run_checks(data) if c.name == "local_calls").status == "fail"
    gone = dataclasses.replace(data, problems=["events: xen's file is missing"])
    assert next(c for c in run_checks(gone) if c.name == "local_calls").status == "unknown"


SCENARIO = """
name: vcpu0-moves
seed: 5
pcpus: 4
pcpus_per_host: 4
duration_s: 6
vcpu0_pcpu: 0
vcpu0_moves:
  - {at_s: 2, pcpu: 2}
  - {at_s: 4, pcpu: 3}
throttle: {preset: fast}
drain_timeout_s: 20
workload:
  streams:
    - {type: cmc, rate: 1.5, pcpus: all}
"""


@pytest.mark.slow
@pytest.mark.parametrize("broken", [False, True], ids=["follows-moves", "stale-placement"])
def test_vcpu0_moves_in_a_real_run(broken: bool, tmp_path: Path) -> None:
    text = SCENARIO + ("broken_rule: stale-placement\n" if broken else "")
    (tmp_path / "moves.yaml").write_text(text)
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "xenmca.cli",
            "run",
            str(tmp_path / "moves.yaml"),
            "--out",
            str(out),
            "--json",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "XENMCA_ALLOW_BROKEN_RULES": "1"},
    )
    results = json.loads((out / "results.json").read_text())
    check = next(c for c in results["checks"] if c["name"] == "local_calls")
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    moved = [e for e in events if e["kind"] == "vcpu0_moved"]
    assert [e["pcpu"] for e in moved] == [2, 3]
    if broken:
        assert done.returncode == 1 and results["valid"] is False
        assert check["status"] == "fail" and check["records"], check
    else:
        assert done.returncode == 0, done.stderr[-2000:]
        assert check["status"] == "pass", check
        local = {e["pcpu"] for e in events if e["kind"] in ("get_local", "clear_local")}
        assert local <= {0, 2, 3} and len(local) >= 2  # local where vCPU0 was, as it moved
