"""The coordinator's per-type interrupt queues: ordered entries, one of them in flight.

Pure bookkeeping, no I/O: the coordinator and its policy decide when entries
move; this module keeps their order, their handling state (queued, injected,
read) and an index by key, so that looking an entry up is O(1) whatever the
policy's idea of an entry (one per pCPU and type, one per pCPU, or one per
interrupt with no key at all).
"""

from __future__ import annotations

import enum
import itertools
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field

_SEQ = itertools.count(1)


class State(enum.Enum):
    QUEUED = "queued"
    INJECTED = "injected"
    READ = "read"


@dataclass(eq=False)
class Entry:
    """Records of one pCPU waiting in firmware, as one queue entry."""

    pcpu: int
    # The record type SAL calls for this entry read and clear: usually the queue's own
    # type, MCA for an MCA signalled on the CMC path (mca.c ia64_mca_ucmc_handler).
    sal_type: int = 0
    # What the entry stands for in its queue (None: nothing else can be merged into it).
    key: Hashable | None = None
    state: State = State.QUEUED
    record_id: int = 0
    # An interrupt (or a poll) saw new records since the entry was (re)queued:
    # after CLEAR it goes back to the tail even if the CLEAR saw none remaining.
    dirty: bool = False
    # Taken back from a dom0 that went away before clearing it.
    reinjected: bool = False
    # Clock time of the entry's last progress (injected, read), for the watchdog.
    touched: float = 0.0
    seq: int = field(default_factory=lambda: next(_SEQ))


class TypeQueue:
    """Entries of one queue in order (head first), plus the one entry in flight."""

    def __init__(self) -> None:
        self._waiting: OrderedDict[int, Entry] = OrderedDict()
        self._by_key: dict[Hashable, Entry] = {}
        self.in_flight: Entry | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._waiting.values())

    @property
    def head(self) -> Entry | None:
        """The in-flight entry if any, else the first waiting one."""
        if self.in_flight is not None:
            return self.in_flight
        return next(iter(self._waiting.values()), None)

    def listed(self, key: Hashable) -> Entry | None:
        """The entry (waiting or in flight) that stands for key."""
        return self._by_key.get(key)

    def has(self, pcpu: int) -> bool:
        """Whether any entry (waiting or in flight) is pcpu's."""
        if self.in_flight is not None and self.in_flight.pcpu == pcpu:
            return True
        return any(entry.pcpu == pcpu for entry in self._waiting.values())

    def entry_for(self, pcpu: int) -> Entry | None:
        """pcpu's first entry: in flight, else the first waiting one."""
        if self.in_flight is not None and self.in_flight.pcpu == pcpu:
            return self.in_flight
        return next((e for e in self._waiting.values() if e.pcpu == pcpu), None)

    def append(self, entry: Entry) -> None:
        """A new entry at the tail (its key, if any, must not be listed)."""
        if entry.key is not None:
            if entry.key in self._by_key:
                raise RuntimeError(f"an entry for {entry.key!r} is already listed")
            self._by_key[entry.key] = entry
        self._waiting[entry.seq] = entry

    def requeue_tail(self, entry: Entry) -> None:
        """Put an entry (usually the one that was in flight) at the tail, queued."""
        self._relist(entry)
        self._waiting.move_to_end(entry.seq)

    def requeue_head(self, entry: Entry) -> None:
        """Put an entry back at the head, queued."""
        self._relist(entry)
        self._waiting.move_to_end(entry.seq, last=False)

    def remove(self, entry: Entry) -> None:
        """Drop a waiting entry, or the one in flight (it is freed)."""
        if self.in_flight is entry:
            self.in_flight = None
        self._waiting.pop(entry.seq, None)
        if entry.key is not None and self._by_key.get(entry.key) is entry:
            del self._by_key[entry.key]

    def discard(self, pcpu: int) -> None:
        """Drop every waiting entry of pcpu (its pCPU has nothing left)."""
        for entry in [e for e in self._waiting.values() if e.pcpu == pcpu]:
            self.remove(entry)

    def take_next(self, available: Callable[[int], bool]) -> Entry | None:
        """Make the first entry whose pCPU is available the one in flight.

        Entries of unavailable pCPUs are passed over and keep their places, so
        an unreachable pCPU delays only its own entries.
        """
        if self.in_flight is not None:
            raise RuntimeError("an entry is already in flight")
        for seq, entry in self._waiting.items():
            if available(entry.pcpu):
                del self._waiting[seq]
                self.in_flight = entry
                return entry
        return None

    def release_in_flight(self) -> Entry:
        """Take the entry in flight out of flight (the caller requeues or removes it)."""
        entry = self.in_flight
        if entry is None:
            raise RuntimeError("no entry in flight")
        self.in_flight = None
        return entry

    def _relist(self, entry: Entry) -> None:
        if self.in_flight is entry:
            self.in_flight = None
        entry.state = State.QUEUED
        entry.record_id = 0
        entry.dirty = False
        self._waiting[entry.seq] = entry
        if entry.key is not None:
            self._by_key[entry.key] = entry
