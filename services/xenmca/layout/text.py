"""format_record: a multi-line, human-readable print of a SAL record, in the spirit of
Linux's salinfo decoder and the ia64 MCA log printer (header, then each section with its
GUID name and its fields in hex)."""

from __future__ import annotations

from xenmca.layout.codec import encode_record, encode_section
from xenmca.layout.guids import guid_name
from xenmca.layout.record import SEVERITY_NAMES, SalRecord
from xenmca.layout.sections import (
    MemorySection,
    ModCheck,
    PciBusSection,
    PlatformSpecificSection,
    ProcessorSection,
    Section,
)

_INDENT = "    "


def _hexdump(data: bytes, indent: str, width: int = 16) -> list[str]:
    return [
        f"{indent}{offset:04x}: {data[offset : offset + width].hex(' ')}"
        for offset in range(0, len(data), width)
    ]


def _field(name: str, value: int, digits: int = 16) -> str:
    return f"{_INDENT * 2}{name:<22}: 0x{value:0{digits}x}"


def _check_lines(kind: str, checks: tuple[ModCheck, ...]) -> list[str]:
    lines = []
    for index, check in enumerate(checks):
        lines.append(f"{_INDENT * 2}{kind} check {index}:")
        lines.extend(
            f"{_INDENT * 3}{name:<21}: 0x{getattr(check, name):016x}" for name in ModCheck.FIELDS
        )
    return lines


def _oem_lines(name: str, data: bytes) -> list[str]:
    if not data:
        return [f"{_INDENT * 2}{name:<22}: (none)"]
    return [f"{_INDENT * 2}{name:<22}: {len(data)} bytes", *_hexdump(data, _INDENT * 3)]


def _body_lines(section: Section) -> list[str]:
    if isinstance(section, ProcessorSection):
        lines = [
            _field("proc_error_map", section.proc_error_map),
            _field("proc_state_parameter", section.proc_state_parameter),
            _field("proc_cr_lid", section.proc_cr_lid),
        ]
        lines += _check_lines("cache", section.cache_checks)
        lines += _check_lines("tlb", section.tlb_checks)
        return lines + _check_lines("bus", section.bus_checks)
    if isinstance(section, MemorySection):
        lines = [_field(name, getattr(section, name)) for name in section.U64_HEAD]
        lines += [_field(name, getattr(section, name), 4) for name in section.U16_FIELDS]
        lines += [_field(name, getattr(section, name)) for name in section.U64_TAIL]
        lines.append(f"{_INDENT * 2}{'oem_id':<22}: {section.oem_id.hex()}")
        return lines + _oem_lines("oem_data", section.oem_data)
    if isinstance(section, PciBusSection):
        lines = [
            _field("err_status", section.err_status),
            _field("err_type", section.err_type, 4),
            _field("bus_id", section.bus_id, 4),
        ]
        lines += [_field(name, getattr(section, name)) for name in section.U64_TAIL]
        return lines + _oem_lines("oem_data", section.oem_data)
    if isinstance(section, PlatformSpecificSection):
        return [
            _field("err_status", section.err_status),
            f"{_INDENT * 2}{'guid':<22}: {section.oem_guid}",
            *_oem_lines("oem_data", section.oem_data),
        ]
    return _oem_lines("body", section.body)


def format_section(section: Section, index: int = 0) -> str:
    """One section: its header line, then its decoded fields."""
    major, minor = section.revision
    length = len(encode_section(section))
    head = (
        f"{_INDENT}section {index}: {guid_name(section.guid)} ({section.guid})\n"
        f"{_INDENT * 2}revision {major}.{minor:02d}, error_recovery_info "
        f"0x{section.error_recovery_info:02x}, length {length} (0x{length:x})"
    )
    return "\n".join([head, *_body_lines(section)])


def format_record(record: SalRecord) -> str:
    """The whole record: header fields, then every section."""
    major, minor = record.revision
    length = len(encode_record(record))
    severity = SEVERITY_NAMES[record.severity]
    platform = str(record.platform_guid) if record.platform_guid is not None else "(not valid)"
    lines = [
        f"SAL error record id 0x{record.record_id:016x}",
        f"{_INDENT}revision {major}.{minor:02d}, severity {severity} ({record.severity}), "
        f"length {length} (0x{length:x}), {len(record.sections)} section(s)",
        f"{_INDENT}timestamp {record.timestamp:%Y-%m-%d %H:%M:%S} UTC",
        f"{_INDENT}platform_guid {platform}",
    ]
    lines += [format_section(section, i) for i, section in enumerate(record.sections)]
    return "\n".join(lines)
