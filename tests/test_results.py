"""results.json and events.jsonl from a hand-built run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from test_checkers_data import synthetic_run

from xenmca.testbed.check.checkers import run_checks
from xenmca.testbed.run.results import build_results, write_events, write_results
from xenmca.testbed.scenario.model import Policy


def test_results_hold_every_key(tmp_path: Path) -> None:
    data = synthetic_run()
    results = build_results(data, run_checks(data))
    path = write_results(tmp_path, results)
    loaded = json.loads(path.read_text())
    assert path.name == "results.json"
    assert {
        "valid",
        "records",
        "latency_ms",
        "throughput_rps",
        "throughput_rps_workload",
        "throttle",
        "faults",
        "rpc",
        "checks",
        "scenario",
        "versions",
        "duration_s",
        "problems",
        "policy",
    } <= set(loaded)
    assert set(loaded["records"]) >= {
        "injected",
        "requested",
        "logged",
        "duplicates",
        "redelivered",
        "lost",
        "pending",
        "overflowed",
        "cleared_before_logged",
    }
    assert set(loaded["latency_ms"]) >= {"p50", "p99", "max", "mean"}
    assert set(loaded["throttle"]) >= {"transitions", "polls", "polled_records"}
    assert set(loaded["rpc"]) >= {"local", "ipi", "retries", "failures"}
    for fault in loaded["faults"]:
        assert set(fault) == {
            "kind",
            "target",
            "start_s",
            "end_s",
            "effect",
            "params",
            "fault",
            "outcome",
            "overlapped_by",
            "ended_by",
        }
    for transition in loaded["throttle"]["transitions"]:
        assert set(transition) == {"t_s", "pcpu", "type", "old", "new", "interval_s", "why"}
    for check in loaded["checks"]:
        assert set(check) == {
            "name",
            "status",
            "observed",
            "bound",
            "detail",
            "records",
            "records_total",
        }
    assert loaded["policy"] == {"xen": "xenmca", "dom0": "xenmca", "options": {}, "sal": "extended"}


def test_results_values(tmp_path: Path) -> None:
    data = synthetic_run()
    results = build_results(data, run_checks(data))
    assert results["valid"] is True
    assert results["records"] == {
        "injected": 10,
        "requested": 10,
        "logged": 10,
        "duplicates": 0,
        "redelivered": 0,
        "lost": 0,
        "pending": 0,
        "overflowed": 0,
        "cleared_before_logged": 0,
    }
    assert results["latency_ms"]["p50"] == 5.0 and results["latency_ms"]["max"] == 5.0
    assert results["rpc"]["local"] == 10  # pCPU 0: 5 GETs + 5 CLEARs
    assert results["rpc"]["ipi"] == 10
    assert results["rpc"]["retries"] == 1 and results["rpc"]["failures"] == 0
    throttle = results["throttle"]
    assert [(t["old"], t["new"]) for t in throttle["transitions"]] == [
        ("interrupt", "polling"),
        ("polling", "interrupt"),
    ]
    assert (throttle["polls"], throttle["polled_records"]) == (2, 3)
    assert results["throughput_rps"] == round(10 / results["duration_s"], 3)
    assert results["faults"][0]["kind"] == "kill" and results["faults"][1]["end_s"] is None
    assert results["faults"][0]["outcome"] == "applied"  # defaults: no overlap
    assert results["faults"][0]["overlapped_by"] == [] and results["faults"][0]["fault"] is None
    assert results["scenario"]["name"] == "synthetic"
    assert results["scenario"]["checks"]["latency_p99_ms"] == 50.0
    json.dumps(results)  # JSON-safe as built


def test_a_failed_check_makes_results_invalid() -> None:
    data = synthetic_run()
    lossy = dataclasses.replace(data, log=data.log[1:])
    results = build_results(lossy, run_checks(lossy))
    assert results["valid"] is False
    assert results["records"]["lost"] == 1
    conservation = next(c for c in results["checks"] if c["name"] == "conservation")
    assert conservation["records"] == [
        {"pcpu": 0, "type": "CMC", "record_id": 1, "note": "created, never logged, not pending"}
    ]
    assert conservation["records_total"] == 1
    json.dumps(results)


def test_the_policy_is_recorded() -> None:
    data = synthetic_run()
    policy = Policy(xen="xen-ia64-2009", dom0="linux-salinfo", options={"after_clear": "head"})
    scenario = dataclasses.replace(data.scenario, policy=policy, sal="plain")
    results = build_results(dataclasses.replace(data, scenario=scenario), [])
    assert results["policy"] == {
        "xen": "xen-ia64-2009",
        "dom0": "linux-salinfo",
        "options": {"after_clear": "head"},
        "sal": "plain",
    }


def test_events_jsonl_holds_every_event(tmp_path: Path) -> None:
    data = synthetic_run()
    path = write_events(tmp_path, data.events)
    lines = path.read_text().splitlines()
    assert path.name == "events.jsonl"
    assert [json.loads(line) for line in lines] == data.events
