"""The pCPU firmware's only door to xenmca.layout: building, sizing and showing SAL records.

Everything the firmware needs from the SAL binary layout goes through this module
(encode the raw bytes of a new record, default sections, section checks, the
strict check of a real record's bytes and the id written into them, the largest
record size, the ErrorRecord message), so a change in the layout package costs
one edit here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from xenmca.layout.codec import decode_record, encode_record
from xenmca.layout.errors import RecordFormatError
from xenmca.layout.limits import MAX_SECTIONS_PER_RECORD, max_encoded_size
from xenmca.layout.proto_convert import sections_from_proto, sections_to_proto, severity_to_proto
from xenmca.layout.raw import problem_offset, with_record_id
from xenmca.layout.record import SalRecord
from xenmca.layout.sections import (
    ERROR_RECOVERY_CORRECTED,
    ERROR_RECOVERY_RESET,
    ERROR_RECOVERY_VALID,
    MemorySection,
    ModCheck,
    ProcessorSection,
    Section,
)
from xenmca.pcpu.model import StoredRecord, sal_severity, sal_type
from xenmca.pcpu.store import RawFactory
from xenmca.record.v1 import record_pb2

__all__ = [
    "MAX_SECTIONS",
    "RawRecordError",
    "SectionError",
    "Sections",
    "error_record",
    "given_raw_factory",
    "max_record_size",
    "parse_raw_record",
    "parse_sections",
    "raw_factory",
    "shown_sections",
]

MAX_SECTIONS = MAX_SECTIONS_PER_RECORD
Sections = tuple[Section, ...]
"""The sections of one record, as the layout models them."""
_MASK64 = (1 << 64) - 1


class SectionError(ValueError):
    """Sections that the SAL layout refuses; the message names the field."""


class RawRecordError(ValueError):
    """Bytes that are not one strictly decodable SAL record; ``offset`` is the problem's byte."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def max_record_size(record_type: int) -> int:
    """SAL_GET_STATE_INFO_SIZE: the largest encoded record of the type, in bytes."""
    return max_encoded_size(sal_type(record_type))


def parse_sections(messages: Sequence[record_pb2.Section], severity: int) -> Sections:
    """The layout sections of an InjectError request; SectionError when they cannot be encoded.

    A probe record is encoded so that a record too large for the layout is refused
    here, before anything is created.
    """
    try:
        sections = sections_from_proto(messages)
        encode_record(_sal_record(1, severity, 0, sections))
    except (ValueError, TypeError) as exc:  # RecordFormatError is a ValueError
        raise SectionError(str(exc)) from None
    return sections


def raw_factory(
    pcpu: int, record_type: int, severity: int, sections: Sections | None
) -> RawFactory:
    """A RawFactory for records of one injection.

    ``sections`` None means the default section of the type, with contents seeded
    deterministically by (pcpu, record id); given sections are the same in every
    record, so what the ErrorRecord shows of them is encoded once.
    """
    if sections is None:

        def default_raw(record_id: int, wall_ns: int) -> tuple[bytes, bytes]:
            body = default_sections(pcpu, record_type, severity, record_id)
            raw = encode_record(_sal_record(record_id, severity, wall_ns, body))
            return raw, shown_sections(body)

        return default_raw
    fixed_sections = sections
    fixed_shown = shown_sections(sections)

    def fixed_raw(record_id: int, wall_ns: int) -> tuple[bytes, bytes]:
        raw = encode_record(_sal_record(record_id, severity, wall_ns, fixed_sections))
        return raw, fixed_shown

    return fixed_raw


def parse_raw_record(raw: bytes) -> int:
    """The proto severity of a real record's bytes; RawRecordError unless they are exactly
    one record that decodes strictly."""
    try:
        record = decode_record(raw)
    except RecordFormatError as exc:
        raise RawRecordError(str(exc), problem_offset(exc, len(raw))) from None
    return int(severity_to_proto(record.severity))


def given_raw_factory(raw: bytes) -> RawFactory:
    """A RawFactory for copies of a real record: its bytes with the firmware's id in the
    header (bytes 0-7), every other byte as given (its timestamp included); its sections,
    the same in every copy, are decoded once."""
    given = bytes(raw)
    shown = shown_sections(decode_record(given).sections)

    def numbered_raw(record_id: int, wall_ns: int) -> tuple[bytes, bytes]:
        return with_record_id(given, record_id), shown

    return numbered_raw


def shown_sections(sections: Sequence[Section]) -> bytes:
    """The encoded ``sections`` field of an ErrorRecord showing these sections (those the
    proto has no message for left out, as when decoding); merged into the message on GET."""
    message = record_pb2.ErrorRecord()
    message.sections.extend(sections_to_proto(sections, skip_unknown=True))
    return message.SerializeToString()


def error_record(pcpu: int, stored: StoredRecord) -> record_pb2.ErrorRecord:
    """The ErrorRecord message of a stored record.

    Its sections come from ``stored.shown_sections``, encoded at creation from the sections
    the raw bytes were encoded from; a record without them (loaded from a state dir) has
    its raw bytes decoded here.
    """
    message = record_pb2.ErrorRecord(
        pcpu=pcpu,
        record_id=stored.record_id,
        type=stored.record_type,  # type: ignore[arg-type]
        severity=stored.severity,  # type: ignore[arg-type]
        raw=stored.raw,
        overflow=stored.overflow,
        created_monotonic_ns=stored.created_monotonic_ns,
    )
    message.created_at.FromNanoseconds(stored.created_wall_ns)
    shown = stored.shown_sections
    if shown is None:
        try:
            shown = shown_sections(decode_record(stored.raw).sections)
        except RecordFormatError:  # pragma: no cover - raw was encoded or strictly decoded
            return message
    message.MergeFromString(shown)
    return message


def _sal_record(
    record_id: int, severity: int, wall_ns: int, sections: Sequence[Section]
) -> SalRecord:
    return SalRecord(
        record_id=record_id,
        severity=sal_severity(severity),
        timestamp=datetime.fromtimestamp(wall_ns / 1e9, UTC),
        sections=tuple(sections),
    )


def _recovery_info(severity: int) -> int:
    if severity == record_pb2.SEVERITY_CORRECTED:
        return ERROR_RECOVERY_VALID | ERROR_RECOVERY_CORRECTED
    if severity == record_pb2.SEVERITY_FATAL:
        return ERROR_RECOVERY_VALID | ERROR_RECOVERY_RESET
    return ERROR_RECOVERY_VALID


def _splitmix64(seed: int) -> int:
    z = (seed + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def default_sections(pcpu: int, record_type: int, severity: int, record_id: int) -> Sections:
    """One section for the type: processor for MCA/INIT/CMC, platform memory for CPE.

    The contents are a pure function of (pcpu, record_id), so a record can be rebuilt
    and compared byte for byte.
    """
    a = _splitmix64((pcpu << 40) ^ record_id)
    b = _splitmix64(a)
    recovery = _recovery_info(severity)
    if record_type == record_pb2.RECORD_TYPE_CPE:
        return (
            MemorySection(
                error_status=a & 0xFFFF,
                physical_addr=(b & 0x0000_0FFF_FFFF_FFC0),
                addr_mask=0x0000_0FFF_FFFF_FFC0,
                node=pcpu // 16,
                card=(a >> 16) & 0x7,
                module=(a >> 20) & 0xF,
                bank=(a >> 24) & 0x7,
                device=(a >> 28) & 0xF,
                row=(a >> 32) & 0xFFFF,
                column=(a >> 48) & 0x3FF,
                bit_position=b >> 58,
                error_recovery_info=recovery,
            ),
        )
    return (
        ProcessorSection(
            proc_error_map=a,
            proc_state_parameter=b,
            proc_cr_lid=(pcpu & 0xFF) << 24 | ((pcpu >> 8) & 0xFF) << 16,
            cache_checks=(ModCheck(check_info=a ^ b, precise_ip=(b << 4) & _MASK64),),
            error_recovery_info=recovery,
        ),
    )
