"""Isolation of storms (DESIGN section 3): a storm on one pCPU leaves the other lines in
interrupt mode.

A transition of a line (pCPU, CMC|CPE) to polling is justified only by a storm of its
own: at least history_length of that line's records within `window` seconds, the
window ending at or before the transition and after the line's previous polling span
ended (or the coordinator restarted): the ia64 rule clears its history on each storm.
The records are counted at their creation (a records_created batch of n records
counts n at its time) or, as the coordinator's storm rule sees them, when their
interrupts reached it (xen interrupt_received, each record once): a network cut
that delays a line's interrupts bunches them, and they are still its own. A line
switched to polling otherwise was throttled by another pCPU's storm; it is named with
its transition's `why`, and so is every record created on it while it was polling.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Sequence

from xenmca.testbed.check.created import Batch, batches
from xenmca.testbed.check.events import Line, line_of, of_kind, t_ns
from xenmca.testbed.check.line_modes import PollingSpan, line_modes
from xenmca.testbed.check.result import CheckResult, RecordRef, Status, ref_order
from xenmca.testbed.run.data import RunData
from xenmca.xen.throttle_settings import ThrottleSettingsError, load_settings

ISOLATION = "isolation"
_THROTTLED_TYPES = ("CMC", "CPE")


def storm_ends(counts: Sequence[tuple[int, int]], history_length: int, window_ns: int) -> list[int]:
    """The times at which the (time, records) of the last `window_ns` reach history_length."""
    ends = []
    total, first = 0, 0
    for when, count in counts:
        total += count
        while counts[first][0] < when - window_ns:
            total -= counts[first][1]
            first += 1
        if total >= history_length:
            ends.append(when)
    return ends


def _received(data: RunData) -> dict[Line, list[tuple[int, int]]]:
    """Per line, when each of its records' interrupts first reached the coordinator."""
    seen: set[tuple[int, int]] = set()
    found: dict[Line, list[tuple[int, int]]] = defaultdict(list)
    for event in of_kind(data.events, "xen", "interrupt_received"):
        key = (int(event["pcpu"]), int(event.get("record_id", 0)))
        if key not in seen:
            seen.add(key)
            found[line_of(event)].append((t_ns(event), 1))
    for times in found.values():
        times.sort()
    return found


def _justified(span: PollingSpan, ends: list[int]) -> bool:
    """A storm ending in (since, start]."""
    after = bisect_right(ends, span.since_ns) if span.since_ns is not None else 0
    return after < bisect_right(ends, span.start_ns)


def _created_while(span: PollingSpan, line_batches: list[Batch]) -> list[int]:
    times = [b.t_ns for b in line_batches]
    chosen = line_batches[bisect_left(times, span.start_ns) : bisect_left(times, span.end_ns)]
    return [i for b in chosen for i in b.ids]


def check_isolation(data: RunData) -> CheckResult:
    throttle = data.scenario.throttle
    try:
        settings = load_settings(throttle.preset, None, dict(throttle.settings))
    except ThrottleSettingsError as exc:
        return CheckResult(ISOLATION, "unknown", None, 0, f"throttle settings: {exc}")
    window_ns = round(settings.window * 1e9)
    by_line: dict[Line, list[Batch]] = defaultdict(list)
    for batch in batches(data.events):
        by_line[batch.line].append(batch)
    received = _received(data)
    modes = line_modes(data.events, data.end_ns)
    lines: list[RecordRef] = []
    records: list[RecordRef] = []
    for line in sorted(modes.spans):
        if line[1] not in _THROTTLED_TYPES:
            continue
        created = [(b.t_ns, b.count) for b in by_line.get(line, [])]
        ends = sorted(
            storm_ends(created, settings.history_length, window_ns)
            + storm_ends(received.get(line, []), settings.history_length, window_ns)
        )
        wrong = [s for s in modes.spans[line] if not _justified(s, ends)]
        if not wrong:
            continue
        whys = ", ".join(dict.fromkeys(s.why or "?" for s in wrong))
        times = f"{len(wrong)} times" if len(wrong) > 1 else "once"
        lines.append(RecordRef(*line, None, f"throttled {times} with no storm of its own: {whys}"))
        for span in wrong:
            note = f"created while throttled ({span.why or '?'})"
            ids = _created_while(span, by_line.get(line, []))
            records += [RecordRef(*line, i, note) for i in ids]
    rule = (
        f"{settings.history_length} records within {settings.window:g} s,"
        " created or received by the coordinator"
    )
    if not lines:
        detail = f"every line switched to polling had a storm of its own ({rule})"
        return CheckResult(ISOLATION, "pass", 0, 0, detail)
    named = ", ".join(f"pCPU {r.pcpu} {r.type}" for r in lines)
    detail = (
        f"{len(lines)} lines switched to polling without a storm of their own ({rule}): {named};"
        f" {len(records)} records created on them while throttled"
    )
    status: Status = "fail"
    result = CheckResult(ISOLATION, status, len(lines), 0, detail)
    return result.naming([*lines, *sorted(records, key=ref_order)], ordered=True)
