"""linux-salinfo's volatile kernel memory, per record type: mca.c's log ring and salinfo.c's slots.

Plain data, no I/O: ``xenmca.dom0.salinfo`` drives it. A dom0 crash loses all
of it, which is the hazard this policy exists to show: a corrected record
lives only here between the kernel's immediate CLEAR and the daemon's commit.

From Linux arch/ia64 (removed in 6.7):

- mca.c ``ia64_log_get``: ``IA64_MAX_LOGS`` = 2 buffers per type ("Double-
  buffering for nested MCAs"); each successful SAL_GET_STATE_INFO goes into
  ``IA64_LOG_NEXT_BUFFER`` and flips the index (``IA64_LOG_INDEX_INC``), so a
  third record read overwrites the first one's buffer.
- salinfo.c ``salinfo_log_wakeup``: saves a pointer to that buffer and the
  record's id in the first free of 5 ``data_saved`` slots; with all 5 full it
  shifts out the oldest (``shift1_data_saved(data, 0)``) unless user space is
  reading a saved record (``data->saved_num``), in which case the new record
  is not saved at all.
- salinfo.c ``salinfo_log_new_read``: takes the oldest slot, copies its buffer
  and compares the copied header id with the saved id; on a mismatch ("saved
  record changed by mca.c since interrupt, discard it") the slot is shifted
  out and the next one tried.
- salinfo.c ``salinfo_log_clear``: shifts out the slot being read.

dom0 runs every handler on vCPU0 here, so every slot belongs to one CPU and
the per-CPU matching of ``data_saved->cpu`` is left out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from xenmca.record.v1 import record_pb2

IA64_MAX_LOGS = 2
"""mca.c: kernel buffers per record type."""
SALINFO_SAVED_SLOTS = 5
"""salinfo.c ``struct salinfo_data``: ``data_saved[5]``, "save last 5 records from mca.c"."""


class DropReason(enum.Enum):
    """Why a record read by the kernel never reached the daemon (the ``reason`` of its event)."""

    CHANGED = "changed"  # salinfo_log_new_read: the buffer now holds a later record
    SHIFTED_OUT = "shifted_out"  # salinfo_log_wakeup: 5 slots full, the oldest made room
    NOT_SAVED = "not_saved"  # salinfo_log_wakeup: 5 slots full while one is being read


@dataclass(frozen=True, eq=False)
class SavedSlot:
    """One ``data_saved`` entry: which buffer, and the id the record had when it was saved."""

    buffer: int
    record_id: int
    pcpu: int
    severity: int  # not in Linux's slot: kept so an event can describe a dropped record


@dataclass(frozen=True)
class Dropped:
    slot: SavedSlot
    reason: DropReason


class LogRing:
    """mca.c ``ia64_state_log[type]``: IA64_MAX_LOGS buffers, written in turn."""

    def __init__(self) -> None:
        self._buffers: list[record_pb2.ErrorRecord | None] = [None] * IA64_MAX_LOGS
        self._next = 0
        self.count = 0
        """``IA64_LOG_COUNT``: records read into the ring so far."""

    def store(self, record: record_pb2.ErrorRecord) -> int:
        """``ia64_log_get`` after a successful GET: fill the next buffer, flip; its index."""
        index = self._next
        self._buffers[index] = record
        self._next = (index + 1) % IA64_MAX_LOGS
        self.count += 1
        return index

    def copy(self, index: int) -> record_pb2.ErrorRecord | None:
        """What the buffer holds now (the daemon's memcpy)."""
        return self._buffers[index]


@dataclass
class SavedSlots:
    """salinfo.c ``data_saved[]`` of one type, oldest first, and the one user space is reading."""

    capacity: int = SALINFO_SAVED_SLOTS
    slots: list[SavedSlot] = field(default_factory=list)
    reading: SavedSlot | None = None
    """``data->saved_num``: the slot whose copy the daemon holds, between read and clear."""

    def save(self, slot: SavedSlot) -> Dropped | None:
        """``salinfo_log_wakeup``: keep slot; what was dropped to make room, or slot itself."""
        if len(self.slots) < self.capacity:
            self.slots.append(slot)
            return None
        if self.reading is not None:
            return Dropped(slot, DropReason.NOT_SAVED)
        oldest = self.slots.pop(0)
        self.slots.append(slot)
        return Dropped(oldest, DropReason.SHIFTED_OUT)

    def take(self, ring: LogRing) -> tuple[record_pb2.ErrorRecord | None, list[Dropped]]:
        """``salinfo_log_new_read``'s slot part: the oldest slot whose buffer holds its record.

        Returns the copy (None when no slot is left: the caller reads SAL
        directly) and the slots discarded on the way because their buffer
        had been reused.
        """
        self.reading = None
        discarded: list[Dropped] = []
        while self.slots:
            slot = self.slots[0]
            copy = ring.copy(slot.buffer)
            # Linux compares the header id alone; SAL ids are unique per platform, while
            # the testbed numbers them per pCPU, so the pCPU is part of the identity here.
            if copy is not None and (copy.pcpu, copy.record_id) == (slot.pcpu, slot.record_id):
                self.reading = slot
                return copy, discarded
            self.slots.pop(0)
            discarded.append(Dropped(slot, DropReason.CHANGED))
        return None, discarded

    def release(self) -> None:
        """``salinfo_log_clear``: the slot being read is done with."""
        if self.reading is not None:
            self.slots.remove(self.reading)
            self.reading = None


@dataclass
class KernelMemory:
    """Everything linux-salinfo keeps in memory for one record type."""

    ring: LogRing = field(default_factory=LogRing)
    saved: SavedSlots = field(default_factory=SavedSlots)
