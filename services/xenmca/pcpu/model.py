"""The firmware's model: SAL numbers, limits, and the plain records it keeps.

Record types and severities are the proto enum values (xenmca.vocab.RecordType,
``record_pb2.SEVERITY_CORRECTED`` ...); SAL numbers are enum value - 1 (record.proto
documents the mapping).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from xenmca.record.v1 import record_pb2
from xenmca.vocab import RECORD_TYPES

SEVERITIES: tuple[int, ...] = (
    record_pb2.SEVERITY_RECOVERABLE,
    record_pb2.SEVERITY_FATAL,
    record_pb2.SEVERITY_CORRECTED,
)

DEFAULT_CAPACITY = 256
"""Pending records per pCPU and type before new ones are counted as overflow."""
MAX_CAPACITY = 1_000_000
MAX_INJECT_COUNT = 1_000_000
"""Most records one InjectError may create."""
MAX_INJECT_RATE = 1_000_000.0
"""Highest rate_per_second a paced InjectError may ask for."""
MIN_INJECT_RATE = 0.001
"""Lowest rate_per_second a paced InjectError may ask for: one record per 1000 s.

Slower "storms" would hold one of the pCPU's MAX_PACED_INJECTIONS slots for ever
(1e-300/s) without making a storm; a few records are a burst, not a rate.
"""
MAX_INJECTION_SECONDS = 86_400.0
"""Longest a paced InjectError may run (count / rate_per_second): a day, the longest
scenario (its duration_s), so that every slot comes free in bounded time."""
MAX_PENDING_IDS_LIMIT = 100_000
"""Most pending record ids per type that one DescribePcpu may ask for."""


class SalMode(StrEnum):
    """Which SAL procedures a pCPU's firmware offers (``--sal``), chosen per host.

    ``EXTENDED`` is xenmca's firmware: clear by record id, ``remaining`` and
    ``already_cleared`` on CLEAR, ``pending`` and ``created`` on a mask change,
    DescribePcpu for the coordinator. ``PLAIN`` is what real SAL offers and nothing
    more: GET (oldest), CLEAR (current) and GET_SIZE. A StrEnum, so "plain" and
    SalMode.PLAIN are interchangeable.
    """

    EXTENDED = "extended"
    PLAIN = "plain"


def paced_seconds(count: int, rate_per_second: float) -> float:
    """How long a paced injection of count records at rate_per_second lasts: count / rate."""
    return count / rate_per_second


def paced_too_long(count: int, rate_per_second: float) -> bool:
    """Whether such an injection would run longer than MAX_INJECTION_SECONDS.

    A relative slack of 1e-9 lets a storm of exactly a day pass whatever the float
    rounding of rate * seconds and count / rate.
    """
    return paced_seconds(count, rate_per_second) > MAX_INJECTION_SECONDS * (1 + 1e-9)


def sal_type(record_type: int) -> int:
    """The SAL_INFO_TYPE_* number of a proto record type."""
    return record_type - 1


def sal_severity(severity: int) -> int:
    """The SAL severity byte of a proto severity."""
    return severity - 1


@dataclass(slots=True)
class StoredRecord:
    """One pending record as the firmware keeps it: the raw SAL bytes are authoritative.

    ``shown_sections`` is the encoded ``sections`` field of its ErrorRecord, made at
    creation from the same sections the raw bytes were encoded from, so a GET need
    not decode raw again; None (a record loaded from a state dir) means decode raw.
    A cache, so it takes no part in comparisons.
    """

    record_id: int
    record_type: int
    severity: int
    created_wall_ns: int
    created_monotonic_ns: int
    raw: bytes
    overflow: bool = False
    shown_sections: bytes | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class TypeCounters:
    """Lifetime counters of one record type on one pCPU (durable with a state dir).

    created = stored + overflowed; pending = created - overflowed - cleared.
    """

    created: int = 0
    cleared: int = 0
    overflowed: int = 0
    interrupts_raised: int = 0

    def copy(self) -> TypeCounters:
        return TypeCounters(self.created, self.cleared, self.overflowed, self.interrupts_raised)


@dataclass(frozen=True, slots=True)
class InjectOutcome:
    """What one batch of record creation did."""

    record_type: int
    count: int
    stored: int
    overflowed: int
    first_record_id: int
    last_record_id: int
    interrupt_ids: tuple[int, ...]
    """Ids of the stored records that raise an interrupt (line unmasked at creation)."""
    flagged_record_id: int
    """The pending record that got the overflow flag in this batch (0 when none did)."""


@dataclass(frozen=True, slots=True)
class PacedInjectionState:
    """A snapshot of one paced injection (ListInjections' PacedInjection).

    created = stored + overflowed: records made so far, of count.
    """

    injection_id: int
    record_type: int
    severity: int
    count: int
    rate_per_second: float
    started_wall_ns: int
    created: int
    stored: int
    overflowed: int


@dataclass(frozen=True, slots=True)
class ClearOutcome:
    """What one SAL_CLEAR_STATE_INFO did."""

    sal_status: int
    cleared_record_id: int
    already_cleared: bool
    remaining: int


@dataclass(frozen=True, slots=True)
class TypeState:
    """A snapshot of one type's store and line (DescribePcpu's RecordTypeState)."""

    record_type: int
    pending: int
    capacity: int
    masked: bool
    counters: TypeCounters
    oldest_record_id: int
    newest_record_id: int
    pending_record_ids: tuple[int, ...] = ()
    """The oldest pending ids, as many as the snapshot was asked for (none by default)."""


@dataclass(slots=True)
class LoadedState:
    """What a durable store restores for one pCPU."""

    next_record_id: int = 1
    counters: dict[int, TypeCounters] = field(
        default_factory=lambda: {t: TypeCounters() for t in RECORD_TYPES}
    )
    pending: dict[int, list[StoredRecord]] = field(
        default_factory=lambda: {t: [] for t in RECORD_TYPES}
    )
