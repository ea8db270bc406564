"""Every built-in scenario runs valid through `xenmca run`, as real processes.

These are the CI-sized forms of the demo, storm, polling and fault scenarios
(about 30-60 s each); the results must show 0 lost, 0 duplicated, 0 cleared
before logged, and every fault applied. The hazard scenarios are run both ways
by tests/test_hazards.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xenmca.testbed.scenario.loader import builtin_names, load_builtin

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", [n for n in builtin_names() if not n.startswith("hazard-")])
def test_builtin_scenario_runs_valid(name: str, tmp_path: Path) -> None:
    scenario = load_builtin(name)
    if scenario.network == "netns" and os.geteuid() != 0:
        pytest.skip("network namespaces need root; CI runs as root")
    out = tmp_path / name
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "xenmca.cli",
            "run",
            name,
            "--out",
            str(out),
            "--json",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["valid"] is True
    records = results["records"]
    assert records["lost"] == 0 and records["duplicates"] == 0
    assert records["cleared_before_logged"] == 0
    assert records["injected"] == records["logged"] + records["pending"] + records["overflowed"]
    assert len(results["faults"]) == len(scenario.faults)
    for fault in results["faults"]:
        assert "could not apply" not in fault["effect"] and "failed" not in fault["effect"]
