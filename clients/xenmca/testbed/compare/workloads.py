"""Storm rules side by side: the same workloads under ia64, x86-cmci and leaky-bucket.

Each workload is a scenario run as real processes under each storm rule (the
coordinator's throttle `policy`; everything else is xenmca's default design),
and each run is summed up in the figures a RAS engineer compares storm rules
by: interrupts the coordinator took, polls it made, records logged and
overflowed, how long it took to see a storm and to return to interrupt mode
after it, the latency of the quiet pCPUs' records, and the coordinator's CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xenmca.testbed.check.checkers import percentile
from xenmca.testbed.run.data import RunData
from xenmca.testbed.scenario.loader import parse_scenario
from xenmca.testbed.scenario.model import Scenario

STORM_RULES: tuple[str, ...] = ("ia64", "x86-cmci", "leaky-bucket")
PCPUS = 8
QUIET_RATE = 0.25
"""Records per second of every quiet pCPU: well under every rule's threshold (x86-cmci's
64-tick history holds 1.6 of them with the fast preset's 0.1 s tick)."""


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    duration_s: float
    storms: tuple[dict[str, Any], ...]
    quiet_rate: float = QUIET_RATE


def workloads(quick: bool = False) -> tuple[Workload, ...]:
    """The four workloads; quick: shorter ones (CI)."""
    scale = 0.5 if quick else 1.0

    def storm(pcpus: list[int], rate: float, start: float, seconds: float) -> dict[str, Any]:
        return {
            "type": "cmc",
            "pcpus": pcpus,
            "rate": rate,
            "start_s": start,
            "duration_s": seconds * scale,
        }

    return (
        Workload(
            "short-storm", "one pCPU, 1 s at 2 000/s", 8 * scale + 4, (storm([2], 2000, 2, 1),)
        ),
        Workload(
            "long-storm", "one pCPU, 12 s at 300/s", 18 * scale + 4, (storm([2], 300, 2, 12),)
        ),
        Workload("trickle", "every pCPU 0.25/s, no storm", 16 * scale, ()),
        Workload(
            "many-storms",
            "six pCPUs at once, 2 s at 500/s",
            10 * scale + 4,
            (storm([1, 2, 3, 4, 5, 6], 500, 2, 2),),
        ),
    )


def scenario_for(workload: Workload, rule: str, seed: int = 7) -> Scenario:
    """The workload as a scenario under one storm rule (fast preset; no latency bound)."""
    data: dict[str, Any] = {
        "name": f"compare-{workload.name}-{rule}",
        "description": f"{workload.title}, storm rule {rule}",
        "seed": seed,
        "pcpus": PCPUS,
        "pcpus_per_host": PCPUS,
        "duration_s": workload.duration_s,
        "throttle": {"preset": "fast", "settings": {"policy": rule}},
        "drain_timeout_s": 60,
        "settle_timeout_s": 10,
        "workload": {
            "streams": [{"type": "cmc", "rate": workload.quiet_rate, "pcpus": "all"}],
            "storms": list(workload.storms),
        },
        # Measured here, not judged: a trickle may well trip a stricter rule.
        "checks": {"all_lines_back_to_interrupt": False, "isolation": False},
    }
    return parse_scenario(data, f"{workload.name}/{rule}")


def storm_lines(scenario: Scenario) -> set[tuple[int, str]]:
    return {(p, s.type.upper()) for s in scenario.storms for p in s.pcpus}


def _events(data: RunData, kind: str) -> list[dict[str, Any]]:
    return [e for e in data.events if e.get("component") == "xen" and e.get("kind") == kind]


def figures(data: RunData, results: dict[str, Any]) -> dict[str, Any]:
    """One run's comparison figures (seconds from the storm's start or end; None: never)."""
    scenario = data.scenario
    lines = storm_lines(scenario)
    transitions = [e for e in _events(data, "throttle_transition") if e.get("old") != e.get("new")]
    detect: list[float] = []
    back: list[float] = []
    for storm in scenario.storms:
        start_ns = data.start_ns + int(storm.start_s * 1e9)
        end_ns = start_ns + int(storm.duration_s * 1e9)
        for pcpu in storm.pcpus:
            mine = [e for e in transitions if (e["pcpu"], str(e["type"]).upper()) == (pcpu, "CMC")]
            to_polling = [
                e["t_mono_ns"] for e in mine if e["new"] == "polling" and e["t_mono_ns"] >= start_ns
            ]
            if to_polling:
                detect.append((min(to_polling) - start_ns) / 1e9)
            to_interrupt = [
                e["t_mono_ns"] for e in mine if e["new"] == "interrupt" and e["t_mono_ns"] >= end_ns
            ]
            if to_interrupt:
                back.append((max(to_interrupt) - end_ns) / 1e9)
    quiet = [
        (r.logged_monotonic_ns - r.created_monotonic_ns) / 1e6
        for r in data.log
        if r.created_monotonic_ns > 0 and (r.pcpu, r.type) not in lines
    ]
    throttled_quiet = {
        (e["pcpu"], str(e["type"]).upper())
        for e in transitions
        if e["new"] == "polling" and (e["pcpu"], str(e["type"]).upper()) not in lines
    }
    records = results.get("records") or {}
    workload_s = max(1e-9, (data.workload_end_ns - data.start_ns) / 1e9)
    xen_cpu = data.cpu_s.get("xen")
    cpu_percent = None if xen_cpu is None else round(100 * xen_cpu / workload_s, 1)
    p99 = percentile(quiet, 99)
    stormed = len(lines)
    return {
        "interrupts": len(_events(data, "interrupt_received")),
        "polls": len(_events(data, "poll")),
        "logged": records.get("logged"),
        "overflowed": records.get("overflowed"),
        "lost": records.get("lost"),
        "storm_lines": stormed,
        "storm_lines_detected": len(detect),
        "detect_s": round(max(detect), 3) if detect else None,
        "storm_lines_back": len(back),
        "back_s": round(max(back), 3) if len(back) == stormed and stormed else None,
        "quiet_lines_throttled": len(throttled_quiet),
        "quiet_p99_ms": None if p99 is None else round(p99, 1),
        "coordinator_cpu_percent": cpu_percent,
        "valid": results.get("valid"),
    }
