"""How an interrupt (or a poll that found records) becomes a queue entry: routing and keying.

Two knobs of the policy (xenmca.xen.policy): ``routing`` picks the queue a
record type joins, ``entries`` what one entry stands for. Each choice is a tiny
strategy; `Enqueuer` combines the two.

What Xen/ia64 did, in xen/arch/ia64/linux-xen/mca.c ``ia64_log_queue``:
- 758fbf680d (2006): ``e = xmalloc(sal_queue_entry_t)`` and ``list_add_tail`` on
  every call: one entry per interrupt;
- cb5985adb8 (2009): ``e = &sal_entry[cpuid][queue_type]``, skipped (``goto found``)
  when already listed: one static entry per (pCPU, queue), so an MCA signalled on
  the CMC path (``queue_type = SAL_INFO_TYPE_CMC``) shares the CMC slot.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol

from xenmca.vocab import RecordType
from xenmca.xen.queues import Entry, TypeQueue


class Routing(Protocol):
    name: str

    def queue_for(self, record_type: int) -> int:
        """The queue (record type) a record of record_type joins."""
        ...


class OwnQueue:
    name = "own-queue"

    def queue_for(self, record_type: int) -> int:
        return record_type


class McaOnCmc:
    """mca.c ia64_mca_ucmc_handler: ``ia64_log_queue(SAL_INFO_TYPE_MCA, VIRQ_MCA_CMC)``."""

    name = "mca-on-cmc"

    def queue_for(self, record_type: int) -> int:
        return RecordType.CMC if record_type == RecordType.MCA else record_type


class Keying(Protocol):
    name: str

    def key(self, pcpu: int, sal_type: int) -> Hashable | None:
        """What the entry for this record stands for; None: every interrupt its own entry."""
        ...

    def mark_listed(self, entry: Entry) -> None:
        """An interrupt arrived for a listed entry."""
        ...


class PerType:
    """One entry per (pCPU, record type); a new interrupt marks it for requeueing."""

    name = "per-type"

    def key(self, pcpu: int, sal_type: int) -> Hashable | None:
        return (pcpu, sal_type)

    def mark_listed(self, entry: Entry) -> None:
        # New records since the entry was last looked at: after its CLEAR (in
        # flight, or under way in pipelined mode) it must stay queued.
        entry.dirty = True


class PerSlot:
    """cb5985adb8: one static slot per (pCPU, queue); a listed slot drops the interrupt."""

    name = "per-slot"

    def key(self, pcpu: int, sal_type: int) -> Hashable | None:
        return pcpu

    def mark_listed(self, entry: Entry) -> None:
        return None  # "Skip if sal_entry is already listed in sal_queue"


class PerInterrupt:
    """758fbf680d: a new entry (xmalloc) for every interrupt."""

    name = "per-interrupt"

    def key(self, pcpu: int, sal_type: int) -> Hashable | None:
        return None

    def mark_listed(self, entry: Entry) -> None:  # pragma: no cover - nothing is ever listed
        return None


ROUTINGS: dict[str, type[OwnQueue] | type[McaOnCmc]] = {
    "own-queue": OwnQueue,
    "mca-on-cmc": McaOnCmc,
}
KEYINGS: dict[str, type[PerType] | type[PerSlot] | type[PerInterrupt]] = {
    "per-type": PerType,
    "per-slot": PerSlot,
    "per-interrupt": PerInterrupt,
}


@dataclass(frozen=True)
class Enqueued:
    """Where a record's interrupt went: its queue, and the entry it created (None: merged)."""

    queue_type: int
    entry: Entry | None


class Enqueuer:
    """Routing and keying together: queue a (pCPU, record type) in the right queue."""

    def __init__(self, routing: Routing, keying: Keying, queues: dict[int, TypeQueue]) -> None:
        self.routing = routing
        self.keying = keying
        self.queues = queues

    def enqueue(self, pcpu: int, record_type: int) -> Enqueued:
        queue_type = self.routing.queue_for(record_type)
        queue = self.queues[queue_type]
        key = self.keying.key(pcpu, record_type)
        if key is not None:
            listed = queue.listed(key)
            if listed is not None:
                self.keying.mark_listed(listed)
                return Enqueued(queue_type, None)
        entry = Entry(pcpu, sal_type=record_type, key=key)
        queue.append(entry)
        return Enqueued(queue_type, entry)
