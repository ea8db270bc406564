"""`xenmca run --target`: a scenario driven from outside a deployment, faults through its agents.

Real processes (`slow`): `xenmca up --agents` starts a deployment (every component
under its host's agent) and writes target.json; `xenmca run SCENARIO --target` runs
a fault scenario on it from another process. The run is valid, its faults went
through the agents, and it logged exactly the records a local run of the same
scenario logs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from agents_up import agents_up, xenmca

from xenmca.testbed.infra.netns import NetnsUnavailable, check_available
from xenmca.testbed.run.workload_plan import plan_injections, planned_records
from xenmca.testbed.scenario.loader import parse_scenario_text

pytestmark = pytest.mark.slow

SCENARIO = """
name: target-faults
seed: 21
pcpus: 6
pcpus_per_host: 2
duration_s: 8
throttle: {preset: fast}
drain_timeout_s: 30
workload:
  streams:
    - {type: cmc, rate: 3, pcpus: all}
  bursts:
    - {type: cmc, pcpus: [1, 2], count: 20, at_s: 2}
faults:
  - {at_s: 1.5, kind: kill, target: "pcpu-host:1", restart_after_s: 1.0}
  - {at_s: 3, kind: pause, target: xen, duration_s: 1.0}
  - {at_s: 4.5, kind: rpc, target: "pcpu:0", method: SalService.GetStateInfo,
     action: drop-reply, pcpu: 0, count: 2}
"""


# In namespaces (root), a partition too: the agent cuts its own host's link.
PARTITION = """network: netns
  - {at_s: 5.5, kind: partition, target: "pcpu-host:0", duration_s: 1.0}
"""


def why_not_valid(run: subprocess.CompletedProcess[str]) -> str:
    """The checks a run did not pass and its problems (from its --json output), then the end
    of its stderr."""
    try:
        results = json.loads(run.stdout)
    except ValueError:
        results = {}
    failing = [c for c in results.get("checks", []) if c.get("status") != "pass"]
    problems = results.get("problems")
    return f"checks not passed: {failing}; problems: {problems}\n{run.stderr[-3000:]}"


@pytest.mark.parametrize(
    ("hosts", "tls"),
    [(None, False), (None, True), (3, False)],
    ids=["loopback", "loopback-tls", "namespaces"],
)
def test_a_fault_scenario_from_outside_logs_what_a_local_run_logs(
    tmp_path: Path, hosts: int | None, tls: bool
) -> None:
    text, where = SCENARIO, ["--pcpus-per-host", "2", *(["--tls"] if tls else [])]
    if hosts is not None:
        try:
            check_available()
        except NetnsUnavailable as exc:
            pytest.skip(str(exc))
        network, partition = PARTITION.split("\n", 1)
        text = text.replace("throttle:", f"{network}\nthrottle:") + partition
        where = ["--hosts", str(hosts)]
    scenario = tmp_path / "target-faults.yaml"
    scenario.write_text(text)
    planned = planned_records(plan_injections(parse_scenario_text(text)))["total"]
    with agents_up(tmp_path / "up", "--pcpus", "6", *where) as target:
        remote = xenmca(
            "run", str(scenario), "--target", str(target),
            "--out", str(tmp_path / "remote"), "--json", "--no-progress",
        )  # fmt: skip
    assert remote.returncode == 0, why_not_valid(remote)
    results = json.loads(remote.stdout)
    assert results["valid"] is True
    kinds = {"kill", "pause", "rpc"} | ({"partition"} if hosts else set())
    assert {f["kind"]: f["outcome"] for f in results["faults"]} == dict.fromkeys(kinds, "applied")
    offsets = results["clock_offsets"]
    assert set(offsets) == {"xen", "dom0", "pcpu-host0", "pcpu-host1", "pcpu-host2"}
    assert all(abs(o["offset_ms"]) <= o["uncertainty_ms"] + 1 for o in offsets.values())
    if tls:
        # Under mutual TLS the runner is the operator by its certificate (target.json's
        # `tls`), to the components and to the agents alike; the local run is the same.
        inventory = json.loads(target.read_text())
        assert Path(inventory["tls"]["cert"]).name == "operator.crt"
        return

    local = xenmca(
        "run", str(scenario), "--out", str(tmp_path / "local"), "--json", "--no-progress"
    )
    assert local.returncode == 0, why_not_valid(local)
    local_results = json.loads(local.stdout)
    # The same plan (seed): the same records asked for. A call due while its pCPU host was
    # down may fail for good in either run (counted, never lost); all the rest is logged.
    for run in (results, local_results):
        records = run["records"]
        assert records["requested"] == planned
        assert records["logged"] == records["injected"] and records["lost"] == 0
        assert records["requested"] - records["injected"] <= 3
