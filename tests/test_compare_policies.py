"""`xenmca compare-policies`: the storm rules side by side, as real processes (quick form)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from storm_trips import storm_trips

from xenmca.testbed.compare.workloads import STORM_RULES, scenario_for, workloads
from xenmca.testbed.run.workload_plan import plan_injections


def test_every_workload_loads_under_every_rule_and_the_trickle_never_trips_ia64() -> None:
    for workload in workloads() + workloads(quick=True):
        for rule in STORM_RULES:
            scenario = scenario_for(workload, rule)
            assert scenario.throttle.settings == {"policy": rule}
    trickle = next(w for w in workloads() if w.name == "trickle")
    assert storm_trips(plan_injections(scenario_for(trickle, "ia64")), margin=0.3) == {}


def test_bad_rule_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "xenmca.cli", "compare-policies", "--rules", "ia64,fifo"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "unknown storm rule 'fifo'" in done.stderr


@pytest.mark.slow
def test_quick_comparison_runs_every_rule_on_every_workload(tmp_path: Path) -> None:
    out, figures = tmp_path / "out", tmp_path / "compare.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "xenmca.cli",
            "compare-policies",
            "--quick",
            "--no-progress",
            "--out",
            str(out),
            "--json-out",
            str(figures),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(figures.read_text())["rows"]
    assert [(r["workload"], r["rule"]) for r in rows] == [
        (w.name, rule) for w in workloads(quick=True) for rule in STORM_RULES
    ]
    assert (out / "compare.png").stat().st_size > 0
    for row in rows:
        # Every rule keeps every invariant: throttling changes how, never whether.
        assert row["valid"] is True, row
        assert row["lost"] == 0, row
        if row["storm_lines"]:
            assert row["storm_lines_detected"] == row["storm_lines"], row
            # A storm of hundreds of records is throttled: far fewer interrupts than records.
            assert row["interrupts"] < (row["logged"] + row["overflowed"]) / 3, row
