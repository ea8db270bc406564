"""`xenmca run` with real processes: a valid run, a broken rule caught, bad files refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SMALL = """
name: small
description: four pCPUs, steady CMC, a short storm, CPE by polling
seed: 7
pcpus: 4
pcpus_per_host: 2
duration_s: 6
vcpu0_pcpu: 0
throttle: {preset: fast}
drain_timeout_s: 30
workload:
  streams:
    - {type: cmc, rate: 0.5, pcpus: all}
    - {type: cpe, rate: 0.5, pcpus: [2]}
  storms:
    - {type: cmc, pcpus: [3], rate: 500, start_s: 1, duration_s: 1}
checks:
  lost: 0
  duplicates: 0
  cleared_before_logged: 0
  expect_transitions:
    - {pcpu: 3, type: cmc, mode: polling}
    - {pcpu: 3, type: cmc, mode: interrupt}
"""


def xenmca(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xenmca.cli", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
    )


def test_small_scenario_runs_valid_and_writes_every_result_file(tmp_path: Path) -> None:
    scenario = tmp_path / "small.yaml"
    scenario.write_text(SMALL)
    out = tmp_path / "out"
    done = xenmca("run", str(scenario), "--out", str(out), "--json", "--no-progress")
    assert done.returncode == 0, done.stderr[-2000:]
    printed = json.loads(done.stdout)
    results = json.loads((out / "results.json").read_text())
    assert printed["valid"] is True and results["valid"] is True
    records = results["records"]
    assert records["injected"] == records["requested"] > 500
    assert records["lost"] == 0 and records["duplicates"] == 0
    assert records["cleared_before_logged"] == 0
    assert records["logged"] + records["pending"] + records["overflowed"] == records["injected"]
    assert results["rpc"]["local"] > 0 and results["rpc"]["ipi"] > 0
    assert {t["new"] for t in results["throttle"]["transitions"]} == {"polling", "interrupt"}
    for name in (
        "report.html",
        "events.jsonl",
        "dom0.sqlite",
        "latency.png",
        "rates.png",
        "queue_depth.png",
        "throttle.png",
    ):
        assert (out / name).is_file(), name
    assert not (out / "tokens.json").exists()  # per-run secrets are removed
    kinds = {json.loads(line)["kind"] for line in (out / "events.jsonl").open()}
    assert {"injected", "record_copied", "record_committed", "record_cleared"} <= kinds


def test_a_broken_rule_is_caught_by_the_checkers(tmp_path: Path) -> None:
    scenario = tmp_path / "broken.yaml"
    scenario.write_text(
        SMALL.replace("name: small", "name: broken") + "broken_rule: clear-on-get\n"
    )
    out = tmp_path / "out"
    done = xenmca(
        "run",
        str(scenario),
        "--out",
        str(out),
        "--json",
        "--no-progress",
        env={"XENMCA_ALLOW_BROKEN_RULES": "1"},
    )
    assert done.returncode == 1, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["valid"] is False
    assert results["records"]["cleared_before_logged"] > 0
    failed = {c["name"] for c in results["checks"] if c["status"] == "fail"}
    assert "cleared_before_logged" in failed


def test_bad_scenario_file_exits_2_with_one_line(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(SMALL.replace("rate: 0.5, pcpus: all", "rate: -1, pcpus: all"))
    done = xenmca("run", str(scenario), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "bad.yaml" in lines[0] and "workload.streams[0].rate" in lines[0]
    assert not (tmp_path / "out").exists()


def test_unknown_scenario_name_exits_2() -> None:
    done = xenmca("run", "no-such-scenario")
    assert done.returncode == 2
    assert "no-such-scenario" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_the_whole_testbed_over_mutual_tls(tmp_path: Path) -> None:
    scenario = tmp_path / "small.yaml"
    scenario.write_text(SMALL)
    out = tmp_path / "out"
    done = xenmca("run", str(scenario), "--out", str(out), "--json", "--no-progress", "--tls")
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["valid"] is True and results["records"]["lost"] == 0
    assert (out / "tls" / "ca.crt").is_file()
    assert "mutual TLS as 'xen'" in (out / "logs" / "xen.log").read_text()
    assert "mutual TLS" in (out / "logs" / "pcpu-host0.log").read_text()
