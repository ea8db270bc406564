"""`xenmca run` with real processes: a valid run, a broken rule caught, bad files refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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
  latency_p99_floors: 2000
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
    assert_calibrated_and_scraped(results, out)


def assert_calibrated_and_scraped(results: dict[str, Any], out: Path) -> None:
    """The run calibrated itself at both ends, bounded p99 by it, and scraped every process."""
    calibration = results["calibration"]
    for when in ("start", "end"):
        measured = calibration[when]
        assert measured["rtt_calls"] == 64 and measured["commits"] == 30, measured
        assert measured["floor_ms"] == pytest.approx(
            4 * measured["rtt_ms"] + measured["commit_ms"], abs=0.01
        )
    assert calibration["floor_ms"] == max(calibration[w]["floor_ms"] for w in ("start", "end"))
    assert calibration["warmup"]["channels"] == 4 and calibration["warmup"]["errors"] == []
    (latency,) = [c for c in results["checks"] if c["name"] == "latency_p99"]
    assert latency["status"] == "pass"
    assert latency["bound"] == pytest.approx(2000 * calibration["floor_ms"] + 500, abs=0.1)
    assert "2000 floors" in latency["detail"]

    components = {"pcpu-host0", "pcpu-host1", "xen", "dom0"}
    assert set(results["metrics"]) == components
    assert all(u.startswith("http://127.0.0.1:") for u in results["metrics"].values())
    assert len(set(results["metrics"].values())) == len(components)
    scraped = results["metrics_scrape"]["components"]
    assert set(scraped) == components
    for name, entry in scraped.items():
        assert "error" not in entry, entry
        assert (out / entry["file"]).read_text().startswith("# HELP"), name
    logged = results["records"]["logged"]
    assert scraped["dom0"]["values"]["xenmca_dom0_records_logged_total"] == {"": logged}
    assert scraped["xen"]["values"]["xenmca_xen_records_cleared_total"] == {"": logged}
    created = sum(
        scraped[host]["values"]["xenmca_pcpu_records_created_total"][f"type={kind}"]
        for host in ("pcpu-host0", "pcpu-host1")
        for kind in ("CMC", "CPE")
    )
    assert created == results["records"]["injected"]


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
    assert_calibrated_and_scraped(results, out)
