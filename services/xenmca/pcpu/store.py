"""One pCPU's SAL record store: pending records per type, in arrival order, with a capacity.

Every mutation is planned against the in-memory state, committed as ONE change to
the backend (nothing for the in-memory store; one SQLite transaction for a durable
one), and only then applied to memory. Reads never touch the backend, and what
they see has always been committed.

Record ids: one counter per pCPU, shared by all types, starting at 1; an id is
given to every record that is stored. A record that does not fit in its type's
store is counted (``overflowed``) and flags the newest pending record of the
type, but gets no id, so every id below ``next_record_id`` was stored and is
either still pending or was cleared. That makes clear-by-id exact: an id that is
not pending was cleared, and an id at or above ``next_record_id`` never existed.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from xenmca.pcpu.model import (
    DEFAULT_CAPACITY,
    ClearOutcome,
    InjectOutcome,
    LoadedState,
    StoredRecord,
    TypeCounters,
    TypeState,
)
from xenmca.rpc.errors import invalid_argument
from xenmca.vocab import RECORD_TYPES, SalStatus, type_name

T = TypeVar("T")

RawFactory = Callable[[int, int], tuple[bytes, bytes]]
"""Builds a record from (record_id, created_wall_ns): its raw SAL bytes, and the
encoded sections its ErrorRecord shows (StoredRecord.shown_sections)."""


@dataclass(slots=True)
class StoreChange:
    """One atomic change of one type of one pCPU: what a backend commits in one transaction."""

    pcpu: int
    record_type: int
    next_record_id: int
    counters: TypeCounters
    """The type's counters after the change."""
    inserted: list[StoredRecord] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    flagged: list[int] = field(default_factory=list)
    """Already-stored records whose overflow flag is set by this change."""


class StoreBackend(Protocol):
    """Where a store's state survives a restart."""

    def load(self) -> LoadedState:
        """The pCPU's committed state (empty on first use)."""
        ...

    async def commit(self, change: StoreChange) -> None:
        """Make the change durable, all of it or none of it, before returning."""
        ...


class RecordStore:
    """The records, id counter, counters and line masks of one pCPU.

    ``backend`` None keeps everything in memory (mutations then complete without
    suspending); a durable backend commits each mutation before it becomes visible.
    Masks are not durable: a restarted pCPU comes up with every line unmasked,
    as hardware does after a reset.
    """

    def __init__(
        self,
        pcpu: int,
        capacity: int = DEFAULT_CAPACITY,
        backend: StoreBackend | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.pcpu = pcpu
        self.capacity = capacity
        self._backend = backend
        loaded = backend.load() if backend is not None else LoadedState()
        self._next_id = loaded.next_record_id
        self._counters = {t: loaded.counters[t].copy() for t in RECORD_TYPES}
        self._pending: dict[int, OrderedDict[int, StoredRecord]] = {
            t: OrderedDict((r.record_id, r) for r in loaded.pending[t]) for t in RECORD_TYPES
        }
        self._masked = dict.fromkeys(RECORD_TYPES, False)
        self._lock = asyncio.Lock()

    @property
    def durable(self) -> bool:
        return self._backend is not None

    @property
    def next_record_id(self) -> int:
        return self._next_id

    def current(self, record_type: int) -> StoredRecord | None:
        """The oldest pending record of the type (what SAL_GET_STATE_INFO returns)."""
        pending = self._pending[record_type]
        return next(iter(pending.values())) if pending else None

    def pending_records(self, record_type: int) -> list[StoredRecord]:
        """All pending records of the type, oldest first."""
        return list(self._pending[record_type].values())

    def pending_count(self, record_type: int) -> int:
        return len(self._pending[record_type])

    def masked(self, record_type: int) -> bool:
        return self._masked[record_type]

    def set_mask(self, record_type: int, masked: bool) -> tuple[bool, int]:
        """Mask or unmask the type's line; returns (previously masked, pending now)."""
        previously = self._masked[record_type]
        self._masked[record_type] = masked
        return previously, len(self._pending[record_type])

    def state(self, record_type: int, pending_ids_limit: int = 0) -> TypeState:
        """The type's snapshot, with up to pending_ids_limit pending ids (oldest first)."""
        pending = self._pending[record_type]
        return TypeState(
            record_type=record_type,
            pending=len(pending),
            capacity=self.capacity,
            masked=self._masked[record_type],
            counters=self._counters[record_type].copy(),
            oldest_record_id=next(iter(pending)) if pending else 0,
            newest_record_id=next(reversed(pending)) if pending else 0,
            pending_record_ids=tuple(itertools.islice(pending, pending_ids_limit)),
        )

    async def create(
        self,
        record_type: int,
        severity: int,
        count: int,
        make_raw: RawFactory,
        stamps: tuple[int, int] | None = None,
    ) -> InjectOutcome:
        """Create count records of the type: store what fits, count the rest as overflow.

        stamps: (wall ns, monotonic ns) of their creation, from the firmware's clock
        (default: the machine's)."""

        def plan() -> tuple[StoreChange, InjectOutcome]:
            pending = self._pending[record_type]
            stored = min(count, max(0, self.capacity - len(pending)))
            overflowed = count - stored
            wall_ns, mono_ns = stamps or (time.time_ns(), time.monotonic_ns())
            first = self._next_id
            records = []
            for rid in range(first, first + stored):
                raw, shown = make_raw(rid, wall_ns)
                records.append(
                    StoredRecord(
                        rid, record_type, severity, wall_ns, mono_ns, raw, shown_sections=shown
                    )
                )
            counters = self._counters[record_type].copy()
            counters.created += count
            counters.overflowed += overflowed
            raising = not self._masked[record_type]
            if raising:
                counters.interrupts_raised += stored
            change = StoreChange(self.pcpu, record_type, first + stored, counters, records)
            flagged = 0
            if overflowed and records:
                records[-1].overflow = True
                flagged = records[-1].record_id
            elif overflowed and pending:
                flagged = next(reversed(pending))
                change.flagged.append(flagged)
            outcome = InjectOutcome(
                record_type=record_type,
                count=count,
                stored=stored,
                overflowed=overflowed,
                first_record_id=first if stored else 0,
                last_record_id=first + stored - 1 if stored else 0,
                interrupt_ids=tuple(r.record_id for r in records) if raising else (),
                flagged_record_id=flagged,
            )
            return change, outcome

        return await self._mutate(plan)

    async def clear(self, record_type: int, record_id: int | None) -> ClearOutcome:
        """SAL_CLEAR_STATE_INFO: the oldest record, or exactly record_id (idempotently).

        Raises RequestError (INVALID_ARGUMENT) for an id that was never created, or
        one that is pending under another type.
        """

        def plan() -> tuple[StoreChange | None, ClearOutcome]:
            pending = self._pending[record_type]
            if record_id is None:
                if not pending:
                    return None, ClearOutcome(SalStatus.NO_INFORMATION, 0, False, 0)
                target = next(iter(pending))
            elif record_id in pending:
                target = record_id
            else:
                self._check_known(record_type, record_id)
                return None, ClearOutcome(SalStatus.SUCCESS, record_id, True, len(pending))
            counters = self._counters[record_type].copy()
            counters.cleared += 1
            change = StoreChange(self.pcpu, record_type, self._next_id, counters, deleted=[target])
            return change, ClearOutcome(SalStatus.SUCCESS, target, False, len(pending) - 1)

        return await self._mutate(plan)

    def _check_known(self, record_type: int, record_id: int) -> None:
        if not 1 <= record_id < self._next_id:
            raise invalid_argument(
                "UNKNOWN_RECORD_ID",
                f"pCPU {self.pcpu} never created record {record_id} "
                f"(next record id is {self._next_id})",
                record_id=str(record_id),
                next_record_id=str(self._next_id),
            )
        for other in RECORD_TYPES:
            if other != record_type and record_id in self._pending[other]:
                raise invalid_argument(
                    "RECORD_TYPE_MISMATCH",
                    f"record {record_id} of pCPU {self.pcpu} is a {type_name(other)} record, "
                    f"not {type_name(record_type)}",
                    record_id=str(record_id),
                    record_type=type_name(other),
                )

    async def _mutate(self, plan: Callable[[], tuple[StoreChange | None, T]]) -> T:
        if self._backend is None:
            change, result = plan()
            if change is not None:
                self._apply(change)
            return result
        # Shielded: once a change is being committed, memory must follow it even
        # if the caller (an RPC) is cancelled meanwhile.
        return await asyncio.shield(self._commit_locked(self._backend, plan))

    async def _commit_locked(
        self, backend: StoreBackend, plan: Callable[[], tuple[StoreChange | None, T]]
    ) -> T:
        async with self._lock:
            change, result = plan()
            if change is not None:
                await backend.commit(change)
                self._apply(change)
            return result

    def _apply(self, change: StoreChange) -> None:
        self._next_id = change.next_record_id
        self._counters[change.record_type] = change.counters
        pending = self._pending[change.record_type]
        for record in change.inserted:
            pending[record.record_id] = record
        for record_id in change.deleted:
            del pending[record_id]
        for record_id in change.flagged:
            pending[record_id].overflow = True

    async def drain(self) -> None:
        """Wait until no commit is in flight."""
        async with self._lock:
            pass
