"""A deployment whose hosts' clocks disagree by minutes, driven from outside (`--target`).

Real processes (`slow`, root): `xenmca up --agents --clock-skew` starts pCPU host 1
with its monotonic clocks 300 s ahead and dom0's 120 s ahead, each in a Linux time
namespace (the agent and the component under it). Uncorrected, a record of host 1
would be logged 180 s before it was created. The runner measures each host's offset
through its agent and corrects every stamp: the offsets are found within their stated
uncertainty, no corrected latency is negative beyond the two hosts' uncertainties,
the latencies results.json reports are those corrections give, and every check
(orderings across hosts included) holds.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from agents_up import agents_up, xenmca

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("unshare") is None or os.geteuid() != 0,
        reason="Linux time namespaces need root and util-linux unshare",
    ),
]

SKEWS = {"pcpu-host1": 300, "dom0": 120}

SCENARIO = """
name: skewed-clocks
seed: 8
pcpus: 4
pcpus_per_host: 2
duration_s: 5
throttle: {preset: fast}
drain_timeout_s: 30
workload:
  streams:
    - {type: cmc, rate: 3, pcpus: all}
    - {type: cpe, rate: 1, pcpus: [2, 3]}
faults:
  - {at_s: 2, kind: kill, target: "pcpu-host:1", restart_after_s: 0.5}
"""


def test_skewed_hosts_give_corrected_latencies_within_the_stated_uncertainty(
    tmp_path: Path,
) -> None:
    scenario = tmp_path / "skewed.yaml"
    scenario.write_text(SCENARIO)
    skew_flags = [f for host, s in SKEWS.items() for f in ("--clock-skew", f"{host}={s}")]
    with agents_up(tmp_path / "up", "--pcpus", "4", "--pcpus-per-host", "2", *skew_flags) as target:
        run = xenmca(
            "run", str(scenario), "--target", str(target), "--out", str(tmp_path / "out"),
            "--json", "--no-progress",
        )  # fmt: skip
        db = json.loads(target.read_text())["dom0"]["db"]
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as log:
            rows = log.execute(
                "SELECT pcpu, created_monotonic_ns, logged_monotonic_ns FROM records"
            ).fetchall()
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout)
    assert results["valid"] is True, [c for c in results["checks"] if c["status"] != "pass"]
    assert results["problems"] == []
    assert [f["outcome"] for f in results["faults"]] == ["applied"]

    offsets = results["clock_offsets"]
    for host in ("xen", "dom0", "pcpu-host0", "pcpu-host1"):
        truth_ms = SKEWS.get(host, 0) * 1000
        assert abs(offsets[host]["offset_ms"] - truth_ms) <= offsets[host]["uncertainty_ms"], host
    host_of = {0: "pcpu-host0", 1: "pcpu-host0", 2: "pcpu-host1", 3: "pcpu-host1"}

    assert len(rows) == results["records"]["logged"] > 0
    raw_ms, corrected_ms = [], []
    for pcpu, created, logged in rows:
        host = offsets[host_of[pcpu]]
        raw_ms.append((logged - created) / 1e6)
        corrected = (logged - offsets["dom0"]["offset_ms"] * 1e6) - (
            created - host["offset_ms"] * 1e6
        )
        corrected_ms.append(corrected / 1e6)
        # Causality on one clock: logged after created, up to the two uncertainties.
        slack = host["uncertainty_ms"] + offsets["dom0"]["uncertainty_ms"]
        assert corrected / 1e6 >= -slack, (pcpu, corrected / 1e6, slack)
    # The skew was real: uncorrected, host 1's records are "logged" ~180 s before creation.
    skewed = [ms for (pcpu, _, _), ms in zip(rows, raw_ms, strict=True) if pcpu in (2, 3)]
    assert skewed and all(-181_000 < ms < -170_000 for ms in skewed)
    # The runner reported the corrected latencies (its rounding of the offsets aside).
    assert abs(results["latency_ms"]["max"] - max(corrected_ms)) < 0.01
    assert results["latency_ms"]["max"] < 60_000
