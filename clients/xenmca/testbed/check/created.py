"""Which records the pCPUs created, and when, from their `records_created` events.

A batch stores ids first..last (consecutive) and counts stored + overflowed
records at one time; overflowed records get no id. Ids are per pCPU, shared by
every type, so (pCPU, record id) names a record.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from xenmca.testbed.check.events import Line, line_of, of_kind, t_ns


@dataclass(frozen=True)
class Batch:
    """One records_created event."""

    t_ns: int
    line: Line
    first_id: int
    last_id: int
    stored: int
    count: int  # stored + overflowed

    @property
    def ids(self) -> range:
        return range(self.first_id, self.last_id + 1) if self.stored > 0 else range(0)


@dataclass
class CreatedIndex:
    batches: list[Batch] = field(default_factory=list)
    # Stored ids per line, in creation order.
    stored: dict[Line, list[int]] = field(default_factory=lambda: defaultdict(list))
    # (pCPU, record id) -> when it was created, and its type.
    created_at: dict[tuple[int, int], int] = field(default_factory=dict)
    type_of: dict[tuple[int, int], str] = field(default_factory=dict)
    # Ids created more than once: the pCPU lost its store (a restart without durability).
    repeated: set[tuple[int, int]] = field(default_factory=set)


def batches(events: Iterable[dict[str, Any]]) -> list[Batch]:
    found = []
    for event in of_kind(events, "pcpu", "records_created"):
        stored = int(event.get("stored", event.get("count", 0)))
        overflowed = int(event.get("overflowed", 0))
        found.append(
            Batch(
                t_ns=t_ns(event),
                line=line_of(event),
                first_id=int(event.get("first_record_id", 0)),
                last_id=int(event.get("last_record_id", 0)),
                stored=stored,
                count=int(event.get("count", stored + overflowed)),
            )
        )
    found.sort(key=lambda b: b.t_ns)
    return found


def index_created(events: Iterable[dict[str, Any]]) -> CreatedIndex:
    index = CreatedIndex()
    index.batches = batches(events)
    for batch in index.batches:
        pcpu, type_ = batch.line
        for record_id in batch.ids:
            key = (pcpu, record_id)
            if key in index.created_at:
                index.repeated.add(key)
                continue
            index.created_at[key] = batch.t_ns
            index.type_of[key] = type_
            index.stored[batch.line].append(record_id)
    return index
