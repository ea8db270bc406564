"""The results folder's data: results.json (the run, measured and checked) and events.jsonl."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from xenmca.testbed.check.checkers import (
    CheckResult,
    account,
    latency_stats,
    of_kind,
    overall_valid,
)
from xenmca.testbed.infra.metrics_scrape import metrics_results
from xenmca.testbed.run.calibration import calibration_results
from xenmca.testbed.run.data import RunData

RESULTS_FILE = "results.json"
EVENTS_FILE = "events.jsonl"

_LOCAL_CALLS = ("get_local", "clear_local")
_IPI_CALLS = ("get_ipi", "clear_ipi")


def _rate(count: int, start_ns: int, end_ns: int) -> float | None:
    seconds = (end_ns - start_ns) / 1e9
    return round(count / seconds, 3) if seconds > 0 else None


def _round(value: float | int | None, digits: int = 3) -> float | int | None:
    return round(value, digits) if isinstance(value, float) else value


def throughput(data: RunData, logged: int) -> dict[str, float | None]:
    in_window = {
        (r.pcpu, r.record_id)
        for r in data.log
        if data.start_ns <= r.logged_monotonic_ns <= data.workload_end_ns
    }
    return {
        "throughput_rps": _rate(logged, data.start_ns, data.end_ns),
        "throughput_rps_workload": _rate(len(in_window), data.start_ns, data.workload_end_ns),
    }


def throttle_summary(data: RunData) -> dict[str, Any]:
    """Mode changes (old != new) as `transitions`; polling-interval changes are only counted."""
    events = of_kind(data.events, "xen", "throttle_transition")
    changes = [e for e in events if e.get("old") != e.get("new")]
    polls = of_kind(data.events, "xen", "poll")
    dom0_polls = of_kind(data.events, "dom0", "poll")
    return {
        "transitions": [
            {
                "t_s": round(data.seconds(int(e["t_mono_ns"])), 3),
                "pcpu": e.get("pcpu"),
                "type": e.get("type"),
                "old": e.get("old"),
                "new": e.get("new"),
                "interval_s": e.get("interval_s"),
                "why": e.get("why"),
            }
            for e in changes
        ],
        "interval_changes": len(events) - len(changes),
        "lines_left_interrupt": len(
            {(e.get("pcpu"), str(e.get("type")).upper()) for e in changes if e["new"] == "polling"}
        ),
        "polls": len(polls),
        "polled_records": sum(int(e.get("found", 0)) for e in polls),
        "dom0_polls": len(dom0_polls),
        "dom0_polled_records": sum(int(e.get("found", 0)) for e in dom0_polls),
    }


def rpc_summary(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The coordinator's SAL calls from its events (which survive its restarts, unlike counters)."""
    calls = of_kind(events, "xen", *_LOCAL_CALLS, *_IPI_CALLS)
    by_kind = {
        kind: sum(1 for e in calls if e["kind"] == kind) for kind in _LOCAL_CALLS + _IPI_CALLS
    }

    def mean_ms(kinds: tuple[str, ...]) -> float | None:
        times = [float(e["ms"]) for e in calls if e["kind"] in kinds and e.get("ms") is not None]
        return round(sum(times) / len(times), 3) if times else None

    return {
        "local": sum(by_kind[k] for k in _LOCAL_CALLS),
        "ipi": sum(by_kind[k] for k in _IPI_CALLS),
        "retries": len(of_kind(events, "xen", "call_retry")),
        "failures": sum(1 for e in calls if e.get("error")),
        "calls": by_kind,
        "mean_ms": {"local": mean_ms(_LOCAL_CALLS), "ipi": mean_ms(_IPI_CALLS)},
    }


def fault_rows(data: RunData) -> list[dict[str, Any]]:
    """One row per fault; `outcome` and `overlapped_by` tell an overlap from a failed heal."""
    return [
        {
            "kind": f.kind,
            "target": f.target,
            "start_s": round(data.seconds(f.start_ns), 3),
            "end_s": None if f.end_ns is None else round(data.seconds(f.end_ns), 3),
            "effect": f.effect,
            "params": dict(f.params),
            "fault": f.fault,
            "outcome": f.outcome,
            "overlapped_by": list(f.overlapped_by),
            "ended_by": f.ended_by,
        }
        for f in data.faults
    ]


def policy_of(data: RunData) -> dict[str, Any]:
    """The coordinator's and dom0's policies and the firmware the run used."""
    policy = data.scenario.policy
    return {
        "xen": policy.xen,
        "dom0": policy.dom0,
        "options": dict(policy.options),
        "sal": data.scenario.sal,
    }


def build_results(data: RunData, checks: list[CheckResult]) -> dict[str, Any]:
    acc = account(data)
    latency = latency_stats(data.log)
    return {
        "valid": overall_valid(checks),
        "clock": data.clock,
        "clock_offsets": dict(data.clock_offsets),
        "records": acc.as_dict(),
        "latency_ms": {k: _round(v) for k, v in latency.items()},
        **throughput(data, acc.logged),
        "throttle": throttle_summary(data),
        "faults": fault_rows(data),
        "rpc": rpc_summary(data.events),
        "calibration": calibration_results(data.events),
        **metrics_results(data.events, data.results_dir, data.start_ns),
        "checks": [c.as_dict() for c in checks],
        "policy": policy_of(data),
        "scenario": dataclasses.asdict(data.scenario),
        "versions": dict(data.versions),
        "cpu_s": dict(data.cpu_s),
        "duration_s": round(data.seconds(data.end_ns), 3),
        "workload_s": round(data.seconds(data.workload_end_ns), 3),
        "drained": data.drained,
        "problems": list(data.problems),
        "results_dir": data.results_dir,
    }


def write_results(directory: str | Path, results: dict[str, Any]) -> Path:
    path = Path(directory) / RESULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def write_events(directory: str | Path, events: Iterable[dict[str, Any]]) -> Path:
    path = Path(directory) / EVENTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for event in events:
            handle.write(json.dumps(event, separators=(",", ":"), default=str) + "\n")
    return path
