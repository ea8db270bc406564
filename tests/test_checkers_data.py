"""Synthetic runs for the checker, results, plot and report tests (no tests of its own).

`synthetic_run()` builds a RunData that satisfies every rule: each record is
created, committed by dom0, then cleared; pCPU 0 is read locally, the others by
IPI; optionally a storm switches pCPU 1's CMC line to polling and back.
`serve()` plays a queue discipline over arrivals and `history_run()` turns the
records it served (or any hand-written history) into a RunData.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xenmca.testbed.run.data import (
    FaultRecord,
    FirmwareCounts,
    LoggedRecord,
    RunData,
    Sample,
)
from xenmca.testbed.scenario.model import Checks, ExpectedTransition, Scenario

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


# --- service histories: who was served when, for the fairness, isolation and stranded tests --


@dataclass(frozen=True)
class Served:
    """One record of a history: created at `created`, logged at `logged` (None: still pending)."""

    pcpu: int
    record_id: int
    created: int
    logged: int | None
    type: str = "CMC"


def history_run(
    records: Sequence[Served],
    *,
    pcpus: int = 2,
    extra_events: Sequence[dict[str, Any]] = (),
    checks: Checks | None = None,
    final_xen: dict[str, Any] | None = None,
    faults: Sequence[FaultRecord] = (),
) -> RunData:
    """A run whose pCPUs created `records` one at a time and dom0 logged those with a time."""
    events: list[dict[str, Any]] = [event(START_NS, "xen", "coordinator_started", pcpus=pcpus)]
    log: list[LoggedRecord] = []
    lines: dict[tuple[int, str], list[Served]] = defaultdict(list)
    for r in records:
        lines[(r.pcpu, r.type)].append(r)
        ids = {"pcpu": r.pcpu, "type": r.type, "record_id": r.record_id}
        events.append(
            event(
                r.created,
                "pcpu",
                "records_created",
                pcpu=r.pcpu,
                type=r.type,
                first_record_id=r.record_id,
                last_record_id=r.record_id,
                count=1,
                stored=1,
                overflowed=0,
            )
        )
        if r.logged is None:
            continue
        events += [
            event(r.logged, "dom0", "record_committed", **ids, duplicate=False),
            event(r.logged + 1, "pcpu", "record_cleared", **ids, already_cleared=False),
        ]
        log.append(LoggedRecord(r.pcpu, r.record_id, r.type, "corrected", r.created, r.logged))
    firmware = []
    for (pcpu, type_), own in sorted(lines.items()):
        waiting = tuple(sorted(r.record_id for r in own if r.logged is None))
        firmware.append(
            FirmwareCounts(
                pcpu,
                type_,
                created=len(own),
                pending=len(waiting),
                cleared=len(own) - len(waiting),
                overflowed=0,
                pending_ids=waiting,
            )
        )
    events += extra_events
    events.sort(key=lambda e: e["t_mono_ns"])
    end_ns = max(e["t_mono_ns"] for e in events) + 100 * MS
    return RunData(
        scenario=scenario(checks or Checks(all_lines_back_to_interrupt=False), pcpus=pcpus),
        start_ns=START_NS,
        workload_end_ns=end_ns,
        end_ns=end_ns,
        firmware=firmware,
        log=log,
        redelivered=0,
        events=events,
        samples=[],
        faults=list(faults),
        requested=len(records),
        drained=all(f.pending == 0 for f in firmware),
        final_xen=final_xen,
    )


def serve(
    arrivals: Sequence[tuple[int, int]],
    *,
    service_ns: Sequence[int] | int = MS,
    interrupt_delay_ns: Sequence[int] | int = 0,
    after_clear: str = "tail",
) -> list[Served]:
    """Records created at (pCPU, time), served one at a time from a queue of pCPU entries.

    An entry joins the tail when its pCPU's interrupt reaches the coordinator (time +
    interrupt delay) unless it is listed already. After each CLEAR an entry whose pCPU
    has more records goes back to the tail (round-robin) or to the head (xen-ia64-2009).
    Service and delay times are used in turn from the sequences given.
    """

    def nth(values: Sequence[int] | int, i: int) -> int:
        return values if isinstance(values, int) else values[i % len(values)]

    heap: list[tuple[int, int, int, int]] = []  # (time, step: 0 create 1 done 2 interrupt, pcpu, i)
    for i, (pcpu, created) in enumerate(sorted(arrivals, key=lambda a: a[1])):
        heapq.heappush(heap, (created, 0, pcpu, i))
        heapq.heappush(heap, (created + nth(interrupt_delay_ns, i), 2, pcpu, i))
    next_id: dict[int, int] = defaultdict(lambda: 1)
    firmware: dict[int, deque[Served]] = defaultdict(deque)
    queue: deque[int] = deque()
    in_flight: int | None = None
    served: list[Served] = []
    services = 0
    while heap:
        now, step, pcpu, _ = heapq.heappop(heap)
        if step == 0:
            firmware[pcpu].append(Served(pcpu, next_id[pcpu], now, None))
            next_id[pcpu] += 1
        elif step == 1:
            record = firmware[pcpu].popleft()
            served.append(dataclasses.replace(record, logged=now))
            in_flight = None
            if firmware[pcpu]:
                (queue.append if after_clear == "tail" else queue.appendleft)(pcpu)
        elif pcpu != in_flight and pcpu not in queue:
            queue.append(pcpu)
        while in_flight is None and queue:
            head = queue.popleft()
            if firmware[head]:  # an entry whose records were all served already is freed
                in_flight = head
                heapq.heappush(heap, (now + nth(service_ns, services), 1, head, -1))
                services += 1
    return served
