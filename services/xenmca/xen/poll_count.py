"""What a poll of a throttled line counts as found: the ``poll_count`` knob of the policy.

The count decides when a line returns to interrupt mode (CMC: a poll that
found nothing; CPE: halve on records, double on none). Xen/ia64's poll,
mca.c ``ia64_mca_cmc_int_caller``, runs ``ia64_log_queue`` on each pCPU, which
GETs the current record and increments ``IA64_LOG_COUNT`` when there is one;
the poll compares the count before and after. Under Xen nobody clears a record
until dom0 does, so a record that waits for dom0 is counted by every poll and
the line never leaves polling mode while it waits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from xenmca.xen.firmware import TypeView


@dataclass
class PollMemory:
    """What the poller saw of one pCPU's line at its last look."""

    created_seen: int | None = None
    head_seen: int = 0

    def baseline(self, view: TypeView | None, created: int | None) -> None:
        """Start counting from now: records that exist already are not new."""
        self.created_seen = created if created is not None else (view.created if view else None)
        self.head_seen = view.head_id if view is not None else 0


class PollCount(Protocol):
    name: str

    def found(self, memory: PollMemory, view: TypeView) -> int:
        """How many records this look counts as found (and remember what it saw)."""
        ...


class NewRecords:
    """Only records never seen before: from the created counter (extended firmware), else
    a record at the head whose id is newer than any seen (ids only grow)."""

    name = "new-records"

    def found(self, memory: PollMemory, view: TypeView) -> int:
        if view.created is not None and memory.created_seen is not None:
            found = max(0, view.created - memory.created_seen)
            memory.created_seen = view.created
            return found
        memory.created_seen = view.created
        if view.head_id > memory.head_seen:
            memory.head_seen = view.head_id
            return 1
        return 0


class PendingRecords:
    """Any record SAL_GET_STATE_INFO returns counts, already pending or not."""

    name = "pending-records"

    def found(self, memory: PollMemory, view: TypeView) -> int:
        memory.head_seen = view.head_id
        return 1 if view.head_id else 0


POLL_COUNTS: dict[str, type[NewRecords] | type[PendingRecords]] = {
    "new-records": NewRecords,
    "pending-records": PendingRecords,
}
