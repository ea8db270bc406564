"""Fairness across pCPUs (DESIGN section 3): one virtual interrupt in flight per type, and an
entry whose pCPU has more records goes to the tail, so no pCPU is served twice while
another waits.

For a logged record r of pCPU p and type t:

- ready(r) = max(created(r), logged(prev)), prev being p's previous logged record of
  type t in id order: when r became p's oldest pending record. If p had nothing
  pending when r was created and p's t line was polling (masked), r is ready when
  the coordinator next looked at the line (a poll, or the unmask ending the span).
  Either way r is not ready before the coordinator first heard of p's t line at or
  after created(r) (its `interrupt_received` or `entry_queued`), when that happened
  before r was logged: the queue discipline cannot act on an interrupt still in
  flight, such as one a pCPU resends while its TCP connection recovers.
- r is overtaken by s when s is of type t from another pCPU, ready(s) > ready(r)
  and logged(s) < logged(r).
- bound(r) = checks.max_overtaken when set; else the number of other pCPUs that had
  a record of type t pending during [ready(r), logged(r)] (created before logged(r),
  logged, or still unlogged, after ready(r)). Round-robin lets each of them overtake
  r at most once (its entry may be queued just before r's pCPU's interrupt arrives);
  a pCPU re-added at the head overtakes r again and again.

A record whose wait overlaps a disturbance (see disturbances) is excused, counted
but not judged. Overtakings are counted by offline dominance counting per type, and
the pCPUs pending per wait as merged pending intervals per pCPU: O(n log n).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from xenmca.testbed.check.created import index_created
from xenmca.testbed.check.disturbances import Disturbances, disturbances
from xenmca.testbed.check.dominance import count_dominated
from xenmca.testbed.check.events import Line, line_of, of_kind, t_ns
from xenmca.testbed.check.line_modes import LineModes, line_modes
from xenmca.testbed.check.result import CheckResult, RecordRef, Status
from xenmca.testbed.run.data import RunData
from xenmca.vocab import type_name

FAIRNESS = "fairness"

_NEVER = 1 << 62  # the end of a record that was never logged


@dataclass
class TimedRecord:
    """A record of one type with its times; logged None: never logged."""

    pcpu: int
    record_id: int
    created: int | None
    logged: int | None
    ready: int | None = None


@dataclass(frozen=True)
class Overtaken:
    """A judged record overtaken beyond its bound."""

    ref: RecordRef
    times: int
    bound: int


def _records_by_type(data: RunData) -> dict[str, list[TimedRecord]]:
    index = index_created(data.events)
    logged: dict[tuple[int, int], tuple[str, int, int]] = {}
    for row in data.log:
        key = (row.pcpu, row.record_id)
        seen = logged.get(key)
        if seen is None or row.logged_monotonic_ns < seen[2]:
            logged[key] = (type_name(row.type), row.created_monotonic_ns, row.logged_monotonic_ns)
    by_type: dict[str, list[TimedRecord]] = defaultdict(list)
    for (pcpu, record_id), (type_, created, at) in logged.items():
        when = created if created > 0 else index.created_at.get((pcpu, record_id))
        by_type[type_].append(TimedRecord(pcpu, record_id, when, at))
    for key, created in index.created_at.items():
        if key not in logged:
            by_type[index.type_of[key]].append(TimedRecord(key[0], key[1], created, None))
    return by_type


def heard_times(data: RunData) -> dict[Line, list[int]]:
    """When the coordinator heard of each line: its interrupts received and entries queued."""
    heard: dict[Line, list[int]] = defaultdict(list)
    for event in of_kind(data.events, "xen", "interrupt_received", "entry_queued"):
        pcpu, type_ = line_of(event)
        heard[(pcpu, type_name(event.get("record_type", type_)))].append(t_ns(event))
    for times in heard.values():
        times.sort()
    return heard


def _first_heard(heard: list[int], after: int) -> int | None:
    i = bisect_left(heard, after)
    return heard[i] if i < len(heard) else None


def _set_ready(
    records: list[TimedRecord], type_: str, modes: LineModes, heard: dict[Line, list[int]]
) -> None:
    by_pcpu: dict[int, list[TimedRecord]] = defaultdict(list)
    for record in records:
        if record.logged is not None:
            by_pcpu[record.pcpu].append(record)
    for pcpu, own in by_pcpu.items():
        line: Line = (pcpu, type_)
        previous: int | None = None
        for record in sorted(own, key=lambda r: r.record_id):
            if record.created is not None:
                record.ready = record.created if previous is None else max(record.created, previous)
                if record.ready == record.created and modes.span_at(line, record.created):
                    look = modes.next_look(line, record.created)
                    if look is not None and record.logged is not None and look <= record.logged:
                        record.ready = look
                if record.ready == record.created:
                    first = _first_heard(heard.get(line, []), record.created)
                    if first is not None and record.logged is not None and first <= record.logged:
                        record.ready = first
            previous = record.logged


def pending_pcpus(records: list[TimedRecord], waits: list[tuple[int, int]]) -> list[int]:
    """For each wait (a, b): how many pCPUs had a record pending at some time in (a, b)."""
    intervals: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for r in records:
        end = _NEVER if r.logged is None else r.logged
        if r.created is not None and r.created < end:
            intervals[r.pcpu].append((r.created, end))
    starts, ends, gaps = [], [], []
    for own in intervals.values():
        merged: list[list[int]] = []
        for start, end in sorted(own):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        starts += [m[0] for m in merged]
        ends += [m[1] for m in merged]
        gaps += [(merged[i][1], merged[i + 1][0]) for i in range(len(merged) - 1)]
    starts.sort()
    ends.sort()
    # A pCPU whose k merged intervals meet (a, b) has k - 1 gaps between them inside it.
    inside = count_dominated(gaps, waits)
    return [
        bisect_left(starts, b) - bisect_right(ends, a) - gaps_inside
        for (a, b), gaps_inside in zip(waits, inside, strict=True)
    ]


@dataclass(frozen=True)
class _Wait:
    """A logged record with its ready time: a point (ready, logged) for dominance counting."""

    pcpu: int
    record_id: int
    ready: int
    logged: int


@dataclass
class _Tally:
    judged: int = 0
    unjudged: int = 0  # no creation time, or logged before it was ready
    excused: Counter[str] = field(default_factory=Counter)


def _waits(records: list[TimedRecord]) -> list[_Wait]:
    return [
        _Wait(r.pcpu, r.record_id, r.ready, r.logged)
        for r in records
        if r.ready is not None and r.logged is not None
    ]


def _times_overtaken(waits: list[_Wait]) -> list[int]:
    """For each wait, the records of other pCPUs ready after it and logged before it."""
    points = [(w.ready, w.logged) for w in waits]
    times = count_dominated(points, points)
    positions: dict[int, list[int]] = defaultdict(list)
    for i, w in enumerate(waits):
        positions[w.pcpu].append(i)
    for own in positions.values():
        own_points = [points[i] for i in own]
        for i, same_pcpu in zip(own, count_dominated(own_points, own_points), strict=True):
            times[i] -= same_pcpu
    return times


def _overtaken(
    type_: str, records: list[TimedRecord], data: RunData, excuses: Disturbances, tally: _Tally
) -> list[Overtaken]:
    waits = _waits(records)
    tally.unjudged += sum(1 for r in records if r.logged is not None) - len(waits)
    times = _times_overtaken(waits)
    judged = []
    for i, w in enumerate(waits):
        if w.ready >= w.logged:
            tally.unjudged += 1
            continue
        reason = excuses.excuse((w.pcpu, type_), w.ready, w.logged)
        if reason is not None:
            tally.excused[reason] += 1
            continue
        judged.append(i)
    tally.judged += len(judged)
    fixed = data.scenario.checks.max_overtaken
    if fixed is None:
        spans = [(waits[i].ready, waits[i].logged) for i in judged]
        bounds = [max(0, n - 1) for n in pending_pcpus(records, spans)]
    else:
        bounds = [fixed] * len(judged)
    flagged = []
    for i, bound in zip(judged, bounds, strict=True):
        if times[i] > bound:
            w = waits[i]
            note = f"overtaken {times[i]} times, bound {bound}"
            ref = RecordRef(w.pcpu, type_, w.record_id, note)
            flagged.append(Overtaken(ref, times[i], bound))
    return flagged


def check_fairness(data: RunData) -> CheckResult:
    modes = line_modes(data.events, data.end_ns)
    excuses = disturbances(data)
    tally = _Tally()
    heard = heard_times(data)
    flagged: list[Overtaken] = []
    for type_, records in sorted(_records_by_type(data).items()):
        _set_ready(records, type_, modes, heard)
        flagged += _overtaken(type_, records, data, excuses, tally)
    flagged.sort(key=lambda o: (o.bound - o.times, -o.times, o.ref.pcpu, o.ref.record_id or 0))
    fixed = data.scenario.checks.max_overtaken
    rule = (
        f"at most {fixed}"
        if fixed is not None
        else "at most once by each other pCPU with records of its type pending while it waited"
    )
    detail = (
        f"{len(flagged)} of {tally.judged} judged records overtaken beyond their bound"
        f" (a record may be overtaken {rule})"
    )
    if flagged:
        worst = flagged[0]
        detail += f"; worst: {worst.ref.label()}"
    excused = tally.excused
    if excused:
        reasons = ", ".join(f"{kind}: {n}" for kind, n in sorted(excused.items()))
        detail += f"; {sum(excused.values())} excused (their wait overlapped {reasons})"
    if tally.unjudged:
        detail += f"; {tally.unjudged} not judged (no creation time, or logged before ready)"
    status: Status = "fail" if flagged else "pass"
    result = CheckResult(FAIRNESS, status, len(flagged), 0, detail)
    return result.naming((o.ref for o in flagged), ordered=True)
