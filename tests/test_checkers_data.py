"""Synthetic runs for the checker, results, plot and report tests (no tests of its own).

`synthetic_run()` builds a RunData that satisfies every rule: each record is
created, committed by dom0, then cleared; pCPU 0 is read locally, the others by
IPI; optionally a storm switches pCPU 1's CMC line to polling and back.
"""

from __future__ import annotations

from typing import Any

from xenmca.testbed.run_data import (
    FaultRecord,
    FirmwareCounts,
    LoggedRecord,
    RunData,
    Sample,
)
from xenmca.testbed.scenario_model import Checks, ExpectedTransition, Scenario

START_NS = 1_000_000_000_000
MS = 1_000_000


def event(t_ns: int, component: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"t_mono_ns": t_ns, "t_wall": t_ns / 1e9, "component": component, "kind": kind, **fields}


def scenario(checks: Checks | None = None, **fields: Any) -> Scenario:
    base: dict[str, Any] = {
        "name": "synthetic",
        "description": "built by hand for the tests",
        "seed": 7,
        "pcpus": 2,
        "duration_s": 3.0,
    }
    base.update(fields)
    return Scenario(checks=checks or Checks(), **base)


def synthetic_run(
    records_per_pcpu: int = 5,
    pcpus: int = 2,
    *,
    latency_ms: float = 5.0,
    spacing_ms: float = 10.0,
    storm: bool = True,
    checks: Checks | None = None,
) -> RunData:
    events: list[dict[str, Any]] = [event(START_NS, "xen", "coordinator_started", pcpus=pcpus)]
    log: list[LoggedRecord] = []
    firmware: list[FirmwareCounts] = []
    for pcpu in range(pcpus):
        call = "local" if pcpu == 0 else "ipi"
        for i in range(records_per_pcpu):
            record_id = i + 1
            created = START_NS + int((i * pcpus + pcpu + 1) * spacing_ms * MS)
            logged = created + int(latency_ms * MS)
            ids = {"pcpu": pcpu, "type": "CMC", "record_id": record_id}
            events += [
                event(
                    created,
                    "pcpu",
                    "records_created",
                    pcpu=pcpu,
                    type="CMC",
                    first_record_id=record_id,
                    last_record_id=record_id,
                    count=1,
                    stored=1,
                    overflowed=0,
                ),
                event(
                    created + MS,
                    "xen",
                    f"get_{call}",
                    pcpu=pcpu,
                    type="CMC",
                    attempts=1,
                    ms=0.4,
                    error=None,
                ),
                event(
                    logged,
                    "dom0",
                    "record_committed",
                    **ids,
                    duplicate=False,
                    commit_ms=1.0,
                    created_monotonic_ns=created,
                ),
                event(
                    logged + MS // 2, "xen", f"clear_{call}", **ids, attempts=1, ms=0.4, error=None
                ),
                event(
                    logged + MS, "pcpu", "record_cleared", **ids, already_cleared=False, remaining=0
                ),
            ]
            log.append(LoggedRecord(pcpu, record_id, "CMC", "corrected", created, logged))
        firmware.append(FirmwareCounts(pcpu, "CMC", records_per_pcpu, 0, records_per_pcpu, 0))
    expect: tuple[ExpectedTransition, ...] = ()
    if storm:
        events += [
            event(
                START_NS + 500 * MS,
                "xen",
                "throttle_transition",
                pcpu=1,
                type="CMC",
                old="interrupt",
                new="polling",
                interval_s=0.1,
                why="storm",
            ),
            event(START_NS + 600 * MS, "xen", "poll", pcpu=1, type="CMC", found=3, interval_s=0.1),
            event(START_NS + 700 * MS, "xen", "poll", pcpu=1, type="CMC", found=0, interval_s=0.1),
            event(
                START_NS + 700 * MS,
                "xen",
                "throttle_transition",
                pcpu=1,
                type="CMC",
                old="polling",
                new="interrupt",
                interval_s=0.1,
                why="empty poll",
            ),
        ]
        expect = (
            ExpectedTransition(1, "cmc", "polling"),
            ExpectedTransition(1, "cmc", "interrupt"),
        )
    events.append(
        event(START_NS + 1500 * MS, "xen", "call_retry", pcpu=1, attempt=1, error="UNAVAILABLE")
    )
    events.sort(key=lambda e: e["t_mono_ns"])
    end_ns = max(START_NS + 2 * 10**9, max(e["t_mono_ns"] for e in events) + 100 * MS)
    samples = [
        Sample(START_NS + k * 100 * MS, {"CMC": k % 3, "CPE": 0}, [], reachable=k != 7)
        for k in range((end_ns - START_NS) // (100 * MS))
    ]
    total = records_per_pcpu * pcpus
    return RunData(
        scenario=scenario(
            checks or Checks(latency_p99_ms=50.0, latency_max_ms=100.0, expect_transitions=expect),
            pcpus=pcpus,
        ),
        start_ns=START_NS,
        workload_end_ns=end_ns - 500 * MS,
        end_ns=end_ns,
        firmware=firmware,
        log=log,
        redelivered=0,
        events=events,
        samples=samples,
        faults=[
            FaultRecord("kill", "dom0", START_NS + 800 * MS, START_NS + 1100 * MS, "restarted"),
            FaultRecord(
                "drop", "xen.GetStateInfo", START_NS + 1200 * MS, None, "dropped 2", {"calls": 2}
            ),
        ],
        requested=total,
        drained=True,
        versions={"xenmca": "0.1.0"},
        results_dir="",
    )
