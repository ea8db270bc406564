"""What happens to an entry after its SAL call: four knobs of the policy.

- ``clear_target``: which entry (and which record) a trapped CLEAR acts on;
- ``after_clear``: where the entry goes once its CLEAR landed;
- ``clear_failure`` / ``get_failure``: what a call that failed after all its
  attempts does to the entry, and which SAL status dom0 gets back.

Xen/ia64 (xen/arch/ia64/xen/fw_emul.c ``sal_emulator``): CLEAR takes
``list_entry(sal_queue[in1].next)``, the head, whatever dom0 read; as first
shipped it then ``xfree(e)``, since cb5985adb8 it ``list_add``s the entry back at
the head when ``r9 >= 0``, and a failed ``smp_call_function_single`` sets
``r9 = 0`` and status -5, so a failed CLEAR is re-added too. A GET whose
``r9 == 0`` (no record, or the IPI failed) frees the entry.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Protocol

from xenmca.vocab import SalStatus, type_name
from xenmca.xen.queues import Entry, State
from xenmca.xen.state import CoordinatorState

RECENT_CLEARS = 64
"""Records a read-record CLEAR target remembers having cleared, per queue: a CLEAR
repeated after its reply was lost (dom0 retries) is answered "already cleared"."""


@dataclass(frozen=True)
class ClearChoice:
    """The entry a CLEAR acts on and the record id it must clear (None: the current one);
    or, with ``already``, the record named was cleared before and nothing is to be done."""

    entry: Entry | None
    record_id: int | None
    already: bool = False
    pcpu: int | None = None


class ClearTarget(Protocol):
    name: str

    def choose(
        self,
        state: CoordinatorState,
        queue_type: int,
        record_id: int | None,
        pcpu: int | None = None,
    ) -> ClearChoice | None:
        """The entry to clear for dom0's CLEAR(record_id), or None (SAL -5, nothing cleared)."""
        ...

    def cleared(self, queue_type: int, pcpu: int, record_id: int) -> None:
        """The record was cleared (or is being cleared) for dom0."""
        ...


class ReadRecord:
    """Exactly the record dom0 read for the entry in flight, by its id (and pCPU)."""

    name = "read-record"

    def __init__(self) -> None:
        self._recent: dict[int, deque[tuple[int, int]]] = defaultdict(
            lambda: deque(maxlen=RECENT_CLEARS)
        )

    def choose(
        self,
        state: CoordinatorState,
        queue_type: int,
        record_id: int | None,
        pcpu: int | None = None,
    ) -> ClearChoice | None:
        entry = state.queues[queue_type].in_flight
        read = entry if entry is not None and entry.state is State.READ else None
        if read is not None and (
            record_id is None or (record_id == read.record_id and pcpu in (None, read.pcpu))
        ):
            return ClearChoice(read, read.record_id, pcpu=read.pcpu)
        if record_id is not None:
            owner = self._cleared_before(queue_type, record_id, pcpu)
            if owner is not None:
                state.events.emit(
                    "clear_repeated", pcpu=owner, type=type_name(queue_type), record_id=record_id
                )
                return ClearChoice(None, record_id, already=True, pcpu=owner)
            state.events.emit(
                "clear_refused",
                pcpu=entry.pcpu if entry is not None else pcpu,
                type=type_name(queue_type),
                record_id=record_id,
                read_record_id=entry.record_id if entry is not None else 0,
            )
        return None

    def cleared(self, queue_type: int, pcpu: int, record_id: int) -> None:
        self._recent[queue_type].append((pcpu, record_id))

    def _cleared_before(self, queue_type: int, record_id: int, pcpu: int | None) -> int | None:
        """The pCPU of a recently cleared record with that id; None when none, or when
        several pCPUs' records had that id and the CLEAR does not say which."""
        owners = {p for p, r in self._recent[queue_type] if r == record_id}
        if pcpu is not None:
            return pcpu if pcpu in owners else None
        return next(iter(owners)) if len(owners) == 1 else None


class QueueHead:
    """fw_emul.c: the head entry's current record, whatever dom0 read (or asked for)."""

    name = "queue-head"

    def choose(
        self,
        state: CoordinatorState,
        queue_type: int,
        record_id: int | None,
        pcpu: int | None = None,
    ) -> ClearChoice | None:
        queue = state.queues[queue_type]
        entry = queue.in_flight or queue.take_next(lambda _pcpu: True)
        if entry is None:
            return None
        return ClearChoice(entry, None, pcpu=entry.pcpu)

    def cleared(self, queue_type: int, pcpu: int, record_id: int) -> None:
        return None


class Placement(Protocol):
    name: str
    needs_remaining: bool
    """Whether the placement needs to know if the pCPU has more records (an extra GET on
    plain SAL)."""
    failure_status: SalStatus
    """The SAL status dom0 gets when this placement follows a failed call."""

    def place(
        self, state: CoordinatorState, queue_type: int, entry: Entry, remaining: int | None
    ) -> str:
        """Move the entry (in flight, or waiting) to its place; return what happened."""
        ...


def _event(
    state: CoordinatorState, kind: str, queue_type: int, entry: Entry, **fields: object
) -> None:
    state.events.emit(kind, pcpu=entry.pcpu, type=type_name(queue_type), **fields)


class TailIfMore:
    """To the tail while its pCPU has records (or an interrupt marked it), else freed."""

    name = "tail-if-more"
    needs_remaining = True
    failure_status = SalStatus.NO_INFORMATION

    def place(
        self, state: CoordinatorState, queue_type: int, entry: Entry, remaining: int | None
    ) -> str:
        queue = state.queues[queue_type]
        if remaining is None or remaining > 0 or entry.dirty:
            queue.requeue_tail(entry)
            state.counters.requeues += 1
            _event(state, "entry_requeued", queue_type, entry, where="tail", remaining=remaining)
            return "tail"
        queue.remove(entry)
        _event(state, "entry_freed", queue_type, entry, why="cleared")
        return "freed"


class Head:
    """cb5985adb8: ``list_add(&e->list, &sal_queue[in1])``, back at the head."""

    name = "head"
    needs_remaining = False
    failure_status = SalStatus.NO_INFORMATION

    def place(
        self, state: CoordinatorState, queue_type: int, entry: Entry, remaining: int | None
    ) -> str:
        state.queues[queue_type].requeue_head(entry)
        _event(state, "entry_requeued", queue_type, entry, where="head", remaining=remaining)
        return "head"


class Free:
    """758fbf680d: ``xfree(e)``; whatever is left in firmware has no entry any more."""

    name = "free"
    needs_remaining = False
    failure_status = SalStatus.NO_INFORMATION

    def place(
        self, state: CoordinatorState, queue_type: int, entry: Entry, remaining: int | None
    ) -> str:
        state.queues[queue_type].remove(entry)
        _event(state, "entry_freed", queue_type, entry, why="freed")
        return "freed"


class KeepAndHold:
    """A failed call keeps the entry (at the tail) and holds its pCPU for a backoff."""

    name = "keep"
    needs_remaining = False
    failure_status = SalStatus.CALL_ERROR

    def place(
        self, state: CoordinatorState, queue_type: int, entry: Entry, remaining: int | None
    ) -> str:
        state.queues[queue_type].requeue_tail(entry)
        delay = state.links[entry.pcpu].hold()
        _event(
            state,
            "entry_requeued",
            queue_type,
            entry,
            where="tail",
            why="call_failed",
            hold_s=round(delay, 3),
        )
        return "held"


AFTER_CLEAR: dict[str, type[TailIfMore] | type[Head] | type[Free]] = {
    "tail-if-more": TailIfMore,
    "head": Head,
    "free": Free,
}
CLEAR_FAILURE: dict[str, type[KeepAndHold] | type[Head] | type[Free]] = {
    "keep": KeepAndHold,
    "head": Head,
    "free": Free,
}
GET_FAILURE: dict[str, type[KeepAndHold] | type[Free]] = {"keep": KeepAndHold, "drop": Free}
CLEAR_TARGETS: dict[str, type[ReadRecord] | type[QueueHead]] = {
    "read-record": ReadRecord,
    "queue-head": QueueHead,
}
