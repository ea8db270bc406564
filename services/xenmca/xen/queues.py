"""The coordinator's per-type interrupt queues: at most one entry per (pCPU, type), O(1) moves.

Pure bookkeeping, no I/O: the coordinator decides when entries move, this
module only keeps the order and the handling state (queued, injected, read).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass


class State(enum.Enum):
    QUEUED = "queued"
    INJECTED = "injected"
    READ = "read"


@dataclass
class Entry:
    """One (pCPU, type) with records waiting in firmware."""

    pcpu: int
    state: State = State.QUEUED
    record_id: int = 0
    # An interrupt (or a poll) saw new records since the entry was (re)queued:
    # after CLEAR it goes back to the tail even if the CLEAR saw none remaining.
    dirty: bool = False
    # Taken back from a dom0 that went away before clearing it.
    reinjected: bool = False
    # Clock time of the entry's last progress (injected, read), for the watchdog.
    touched: float = 0.0


class TypeQueue:
    """Entries of one record type in arrival order, plus the one entry in flight."""

    def __init__(self) -> None:
        self._waiting: OrderedDict[int, Entry] = OrderedDict()
        self.in_flight: Entry | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._waiting.values())

    def has(self, pcpu: int) -> bool:
        return pcpu in self._waiting or (self.in_flight is not None and self.in_flight.pcpu == pcpu)

    def entry_for(self, pcpu: int) -> Entry | None:
        if self.in_flight is not None and self.in_flight.pcpu == pcpu:
            return self.in_flight
        return self._waiting.get(pcpu)

    def add(self, pcpu: int) -> Entry | None:
        """Queue pcpu at the tail unless it has an entry already; return the new entry."""
        existing = self.entry_for(pcpu)
        if existing is not None:
            # New records since the entry was last looked at: after its CLEAR (in
            # flight, or under way in pipelined mode) it must stay queued.
            existing.dirty = True
            return None
        entry = Entry(pcpu)
        self._waiting[pcpu] = entry
        return entry

    def requeue_tail(self, entry: Entry) -> None:
        """Put an entry (usually the one that was in flight) at the tail, queued."""
        self._reset(entry)
        self._waiting[entry.pcpu] = entry
        self._waiting.move_to_end(entry.pcpu)

    def requeue_head(self, entry: Entry) -> None:
        """Put an entry back at the head, queued (it was taken from a dom0 that left)."""
        self._reset(entry)
        self._waiting[entry.pcpu] = entry
        self._waiting.move_to_end(entry.pcpu, last=False)

    def discard(self, pcpu: int) -> None:
        """Drop pcpu's waiting entry, if any (its pCPU has nothing left)."""
        self._waiting.pop(pcpu, None)

    def take_next(self, available: Callable[[int], bool]) -> Entry | None:
        """Make the first entry whose pCPU is available the one in flight.

        Entries of unavailable pCPUs are passed over and keep their places, so
        an unreachable pCPU delays only its own entries.
        """
        if self.in_flight is not None:
            raise RuntimeError("an entry is already in flight")
        for pcpu, entry in self._waiting.items():
            if available(pcpu):
                del self._waiting[pcpu]
                self.in_flight = entry
                return entry
        return None

    def release_in_flight(self) -> Entry:
        """Take the entry in flight out of flight (the caller requeues or drops it)."""
        entry = self.in_flight
        if entry is None:
            raise RuntimeError("no entry in flight")
        self.in_flight = None
        return entry

    @staticmethod
    def _reset(entry: Entry) -> None:
        entry.state = State.QUEUED
        entry.record_id = 0
        entry.dirty = False
