"""Disturbances that excuse a record's wait from the fairness bound: fault windows, coordinator
restarts, failed SAL calls on the record's own line, its pCPU's link reconnecting (records
made while the link was down are learnt only by the reconciliation that follows), and dom0
detaching or being replaced.

Each kind is a set of merged time windows (an instant is a window of no length);
`excuse(line, start, end)` names the first kind that overlaps [start, end].
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field

from xenmca.testbed.check.events import Line, line_of, of_kind, t_ns
from xenmca.testbed.run.data import RunData

FAULT = "a fault"
RESTART = "a coordinator restart"
DOM0 = "dom0 detached or replaced"
FAILED_CALL = "a failed call on its line"
RECONNECTED = "its pCPU's link reconnecting"

_FAILED = ("call_failed", "clear_failed")
_DOM0_REQUEUE = ("detach", "replaced")


class Windows:
    """Merged, sorted time windows; overlap queries by bisection."""

    def __init__(self, windows: list[tuple[int, int]]) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        for start, end in sorted(windows):
            if self.ends and start <= self.ends[-1]:
                self.ends[-1] = max(self.ends[-1], end)
            else:
                self.starts.append(start)
                self.ends.append(end)

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect_left(self.ends, start)  # the first window ending at or after start
        return i < len(self.starts) and self.starts[i] <= end

    def __len__(self) -> int:
        return len(self.starts)


@dataclass
class Disturbances:
    everywhere: dict[str, Windows] = field(default_factory=dict)
    per_line: dict[Line, Windows] = field(default_factory=dict)
    per_pcpu: dict[int, Windows] = field(default_factory=dict)

    def excuse(self, line: Line, start: int, end: int) -> str | None:
        for kind, windows in self.everywhere.items():
            if windows.overlaps(start, end):
                return kind
        own = self.per_line.get(line)
        if own is not None and own.overlaps(start, end):
            return FAILED_CALL
        link = self.per_pcpu.get(line[0])
        if link is not None and link.overlaps(start, end):
            return RECONNECTED
        return None


def _detached_windows(data: RunData) -> list[tuple[int, int]]:
    """From each detach (seen by xen or dom0) to that side's next attach, or the end."""
    windows = []
    for component in ("xen", "dom0"):
        detached: int | None = None
        for event in of_kind(data.events, component, "dom0_detached", "dom0_attached"):
            if event["kind"] == "dom0_detached":
                detached = t_ns(event) if detached is None else detached
            else:
                if detached is not None:
                    windows.append((detached, t_ns(event)))
                    detached = None
                if event.get("replaced"):
                    windows.append((t_ns(event), t_ns(event)))
        if detached is not None:
            windows.append((detached, data.end_ns))
    return windows


def disturbances(data: RunData) -> Disturbances:
    faults = [(f.start_ns, data.end_ns if f.end_ns is None else f.end_ns) for f in data.faults]
    starts = [t_ns(e) for e in of_kind(data.events, "xen", "coordinator_started")]
    requeued = of_kind(data.events, "xen", "entry_requeued")
    dom0 = _detached_windows(data)
    dom0 += [(t_ns(e), t_ns(e)) for e in requeued if e.get("why") in _DOM0_REQUEUE]
    failed: dict[Line, list[tuple[int, int]]] = defaultdict(list)
    for event in requeued:
        if event.get("why") in _FAILED:
            failed[line_of(event)].append((t_ns(event), t_ns(event)))
    # Every link (re)connection during the run: a reconnect, and the first connections of a
    # coordinator restarted mid-run (records made meanwhile are learnt by reconciliation).
    reconnects: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for event in of_kind(data.events, "xen", "pcpu_connected"):
        if t_ns(event) >= data.start_ns:
            reconnects[int(event["pcpu"])].append((t_ns(event), t_ns(event)))
    return Disturbances(
        per_pcpu={pcpu: Windows(w) for pcpu, w in reconnects.items()},
        everywhere={
            FAULT: Windows(faults),
            RESTART: Windows([(t, t) for t in sorted(starts)[1:]]),
            DOM0: Windows(dom0),
        },
        per_line={line: Windows(w) for line, w in failed.items()},
    )
