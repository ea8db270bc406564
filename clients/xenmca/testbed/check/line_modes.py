"""When each line (pCPU, CMC|CPE) was polling, from the coordinator's events.

A span opens on a throttle_transition to polling and closes on the transition back
to interrupt mode, on a coordinator restart (which resets every line) or at the end
of the run. Polls (and the unmask that ends a span) are when the coordinator can
learn of records created while the line was masked.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from xenmca.testbed.check.events import Line, line_of, t_ns


@dataclass(frozen=True)
class PollingSpan:
    line: Line
    start_ns: int
    end_ns: int
    why: str  # the transition's why ("storm", or the storm's pCPU for a global policy)
    # The end of the line's previous span (or the coordinator's restart) before this one;
    # None when the line had not polled since the start.
    since_ns: int | None


@dataclass
class LineModes:
    spans: dict[Line, list[PollingSpan]]
    # Times the coordinator looked at a polling line: its polls and the span's end.
    looks: dict[Line, list[int]]
    _starts: dict[Line, list[int]] = field(init=False)

    def __post_init__(self) -> None:
        self._starts = {line: [s.start_ns for s in spans] for line, spans in self.spans.items()}

    def span_at(self, line: Line, when: int) -> PollingSpan | None:
        """The span the line was in at `when`, if it was polling."""
        i = bisect_right(self._starts.get(line, []), when) - 1
        if i < 0:
            return None
        span = self.spans[line][i]
        return span if when < span.end_ns else None

    def next_look(self, line: Line, when: int) -> int | None:
        looks = self.looks.get(line, [])
        i = bisect_left(looks, when)
        return looks[i] if i < len(looks) else None


def line_modes(events: Iterable[dict[str, Any]], end_ns: int) -> LineModes:
    spans: dict[Line, list[PollingSpan]] = defaultdict(list)
    looks: dict[Line, list[int]] = defaultdict(list)
    open_: dict[Line, tuple[int, str]] = {}
    since: dict[Line, int] = {}
    restarted: int | None = None

    def close(line: Line, when: int) -> None:
        start, why = open_.pop(line)
        previous = since.get(line, restarted)
        spans[line].append(PollingSpan(line, start, when, why, previous))
        since[line] = when
        looks[line].append(when)

    for event in events:
        if event.get("component") != "xen":
            continue
        kind = event.get("kind")
        if kind == "coordinator_started":
            for line in list(open_):
                close(line, t_ns(event))
            restarted = t_ns(event)
            since.clear()
        elif kind == "throttle_transition":
            line = line_of(event)
            if event.get("new") == "polling" and line not in open_:
                open_[line] = (t_ns(event), str(event.get("why", "")))
            elif event.get("new") == "interrupt" and line in open_:
                close(line, t_ns(event))
        elif kind in ("poll", "line_unmasked"):
            looks[line_of(event)].append(t_ns(event))
    for line in list(open_):
        close(line, max(end_ns, open_[line][0]))
    for times in looks.values():
        times.sort()
    return LineModes(dict(spans), dict(looks))
