"""Conversion between the layout dataclasses and xenmca.record.v1 messages.

Choices, since the proto is narrower than the binary record:

* The proto has no unknown-section kind: ``sections_to_proto`` raises ValueError for an
  :class:`UnknownSection` unless ``skip_unknown=True`` (``record_to_proto`` skips, since
  ``ErrorRecord.raw`` keeps every section byte for byte).
* The proto has no section revision: sections read from the proto get
  DEFAULT_SECTION_REVISION.
* An empty ``oem_id`` or platform-specific ``guid`` (the proto3 default) means 16 zero
  bytes; any other length than 16 is refused.
* Every refusal is a ValueError whose message names the field, e.g.
  ``sections[1].platform_memory.node must be a u16 (0..65535), got 70000``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from xenmca.layout.codec import decode_record, encode_record
from xenmca.layout.limits import MAX_SECTIONS_PER_RECORD, SAL_RECORD_TYPES
from xenmca.layout.record import SalRecord
from xenmca.layout.sections import (
    MemorySection,
    ModCheck,
    PciBusSection,
    PlatformSpecificSection,
    ProcessorSection,
    Section,
    UnknownSection,
)
from xenmca.record.v1 import record_pb2

_CHECK_KINDS = ("cache_checks", "tlb_checks", "bus_checks")
_RECORD_TYPES = (
    record_pb2.RECORD_TYPE_MCA,
    record_pb2.RECORD_TYPE_INIT,
    record_pb2.RECORD_TYPE_CMC,
    record_pb2.RECORD_TYPE_CPE,
)
_SEVERITIES = (
    record_pb2.SEVERITY_RECOVERABLE,
    record_pb2.SEVERITY_FATAL,
    record_pb2.SEVERITY_CORRECTED,
)


def record_type_to_proto(sal_type: int) -> record_pb2.RecordType:
    """RecordType for a SAL type number (MCA 0, INIT 1, CMC 2, CPE 3)."""
    if sal_type not in SAL_RECORD_TYPES:
        raise ValueError(f"type must be a SAL type number 0..3, got {sal_type}")
    return _RECORD_TYPES[sal_type]


def record_type_from_proto(value: int) -> int:
    """The SAL type number of a RecordType; UNSPECIFIED and unknown values are refused."""
    if not 1 <= value <= 4:
        raise ValueError(f"type must be MCA, INIT, CMC or CPE, got {value}")
    return value - 1


def severity_to_proto(severity: int) -> record_pb2.Severity:
    """Severity for a SAL severity number (recoverable 0, fatal 1, corrected 2)."""
    if severity not in (0, 1, 2):
        raise ValueError(f"severity must be a SAL severity 0..2, got {severity}")
    return _SEVERITIES[severity]


def severity_from_proto(value: int) -> int:
    """The SAL severity number of a Severity; UNSPECIFIED and unknown values are refused."""
    if not 1 <= value <= 3:
        raise ValueError(f"severity must be RECOVERABLE, FATAL or CORRECTED, got {value}")
    return value - 1


def _check_to_proto(check: ModCheck) -> record_pb2.ModCheck:
    return record_pb2.ModCheck(**{name: getattr(check, name) for name in ModCheck.FIELDS})


def section_to_proto(section: Section) -> record_pb2.Section:
    """One section as a proto Section; ValueError for an UnknownSection."""
    msg = record_pb2.Section(error_recovery_info=section.error_recovery_info)
    if isinstance(section, ProcessorSection):
        body = msg.processor
        body.proc_error_map = section.proc_error_map
        body.proc_state_parameter = section.proc_state_parameter
        body.proc_cr_lid = section.proc_cr_lid
        for kind in _CHECK_KINDS:
            getattr(body, kind).extend(_check_to_proto(c) for c in getattr(section, kind))
    elif isinstance(section, MemorySection):
        names = section.U64_HEAD + section.U16_FIELDS + section.U64_TAIL + ("oem_id", "oem_data")
        msg.platform_memory.CopyFrom(
            record_pb2.MemorySection(**{name: getattr(section, name) for name in names})
        )
    elif isinstance(section, PciBusSection):
        names = ("err_status", "err_type", "bus_id", *section.U64_TAIL, "oem_data")
        msg.pci_bus.CopyFrom(
            record_pb2.PciBusSection(**{name: getattr(section, name) for name in names})
        )
    elif isinstance(section, PlatformSpecificSection):
        msg.platform_specific.CopyFrom(
            record_pb2.PlatformSpecificSection(
                err_status=section.err_status,
                guid=section.oem_guid.bytes_le,
                oem_data=section.oem_data,
            )
        )
    else:
        raise ValueError(
            f"section with GUID {section.guid} has no proto form (the proto has no unknown "
            f"section); pass skip_unknown=True to leave it out"
        )
    return msg


def sections_to_proto(
    sections: Iterable[Section], *, skip_unknown: bool = False
) -> list[record_pb2.Section]:
    """Proto Sections in order; UnknownSections raise ValueError unless skip_unknown."""
    return [
        section_to_proto(section)
        for section in sections
        if not (skip_unknown and isinstance(section, UnknownSection))
    ]


def _sixteen(name: str, value: bytes) -> bytes:
    if value == b"":
        return bytes(16)
    if len(value) != 16:
        raise ValueError(f"{name} must be exactly 16 bytes, got {len(value)}")
    return value


def section_from_proto(msg: record_pb2.Section) -> Section:
    """The dataclass for one proto Section; ValueError naming the field when invalid."""
    kind = msg.WhichOneof("body")
    common: dict[str, Any] = {"error_recovery_info": msg.error_recovery_info}
    if kind == "processor":
        proc = msg.processor
        checks: dict[str, Any] = {
            name: tuple(
                ModCheck(**{f: getattr(c, f) for f in ModCheck.FIELDS}) for c in getattr(proc, name)
            )
            for name in _CHECK_KINDS
        }
        return ProcessorSection(
            proc_error_map=proc.proc_error_map,
            proc_state_parameter=proc.proc_state_parameter,
            proc_cr_lid=proc.proc_cr_lid,
            **checks,
            **common,
        )
    if kind == "platform_memory":
        mem = msg.platform_memory
        names = MemorySection.U64_HEAD + MemorySection.U16_FIELDS + MemorySection.U64_TAIL
        values: dict[str, Any] = {name: getattr(mem, name) for name in names}
        return MemorySection(
            **values,
            oem_id=_sixteen("platform_memory.oem_id", mem.oem_id),
            oem_data=mem.oem_data,
            **common,
        )
    if kind == "pci_bus":
        pci = msg.pci_bus
        names = ("err_status", "err_type", "bus_id", *PciBusSection.U64_TAIL, "oem_data")
        values = {name: getattr(pci, name) for name in names}
        return PciBusSection(**values, **common)
    if kind == "platform_specific":
        plat = msg.platform_specific
        guid_bytes = _sixteen("platform_specific.guid", plat.guid)
        return PlatformSpecificSection(
            err_status=plat.err_status,
            oem_guid=uuid.UUID(bytes_le=guid_bytes),
            oem_data=plat.oem_data,
            **common,
        )
    raise ValueError(
        "body is not set (one of processor, platform_memory, pci_bus, platform_specific)"
    )


def sections_from_proto(msgs: Iterable[record_pb2.Section]) -> tuple[Section, ...]:
    """Dataclasses for proto Sections; ValueError ("sections[i].field ...") when invalid."""
    result = []
    for index, msg in enumerate(msgs):
        if index >= MAX_SECTIONS_PER_RECORD:
            raise ValueError(f"sections: at most {MAX_SECTIONS_PER_RECORD} sections per record")
        try:
            result.append(section_from_proto(msg))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"sections[{index}].{exc}") from None
    return tuple(result)


def record_to_proto(
    record: SalRecord,
    *,
    pcpu: int,
    type_number: int,
    raw: bytes | None = None,
    created_at: datetime | None = None,
    overflow: bool = False,
    created_monotonic_ns: int = 0,
) -> record_pb2.ErrorRecord:
    """An ErrorRecord for ``record`` held by ``pcpu`` in the log of SAL type ``type_number``.

    ``raw`` defaults to encode_record(record); ``created_at`` (nanosecond wall clock) to the
    record's second-resolution timestamp. Unknown sections appear only in ``raw``.
    """
    msg = record_pb2.ErrorRecord(
        pcpu=pcpu,
        record_id=record.record_id,
        type=record_type_to_proto(type_number),
        severity=severity_to_proto(record.severity),
        sections=sections_to_proto(record.sections, skip_unknown=True),
        raw=encode_record(record) if raw is None else raw,
        overflow=overflow,
        created_monotonic_ns=created_monotonic_ns,
    )
    msg.created_at.FromDatetime(record.timestamp if created_at is None else created_at)
    return msg


def record_from_proto(msg: record_pb2.ErrorRecord) -> SalRecord:
    """The record in ``msg.raw`` (authoritative), checked against the message's record_id
    and severity; RecordFormatError for bad bytes, ValueError for a disagreement."""
    record = decode_record(msg.raw)
    if record.record_id != msg.record_id:
        raise ValueError(f"record_id {msg.record_id} disagrees with raw's id {record.record_id}")
    if severity_to_proto(record.severity) != msg.severity:
        raise ValueError(f"severity {msg.severity} disagrees with raw's severity {record.severity}")
    return record
