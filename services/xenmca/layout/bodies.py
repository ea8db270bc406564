"""Section bodies: the bytes after each 24-byte section header, as sal.h lays them out.

Encoding sets every fixed field's valid bit and the oem_data bit when oem_data is not
empty. Decoding accepts exactly that form (anything else could not re-encode to the same
bytes) and raises RecordFormatError with absolute offsets otherwise.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import Any

from xenmca.layout import guids
from xenmca.layout.errors import RecordFormatError
from xenmca.layout.header import SectionHeader
from xenmca.layout.limits import (
    MAX_OEM_DATA,
    MOD_CHECK_SIZE,
    PROCESSOR_CPUID_INFO_SIZE,
    PROCESSOR_FIXED_BODY,
    PROCESSOR_STATIC_INFO_SIZE,
    SECTION_HEADER_SIZE,
)
from xenmca.layout.sections import (
    MemorySection,
    ModCheck,
    PciBusSection,
    PlatformSpecificSection,
    ProcessorSection,
    Section,
)

PROCESSOR_FIXED = struct.Struct("<QQQQ")
MOD_CHECK = struct.Struct("<QQQQQQ")
MEMORY_FIXED = struct.Struct("<QQQQ8HQQQQ16s")
PCI_BUS_FIXED = struct.Struct("<QQHHIQQQQQQ")
PLATFORM_SPECIFIC_FIXED = struct.Struct("<QQ16s")

PROC_VALID_FIXED = 0b111  # proc_error_map, proc_state_param, proc_cr_lid
PROC_VALID_PSI_STATIC = 1 << 3
PROC_COUNT_SHIFTS = {"cache": 4, "tlb": 8, "bus": 12, "reg_file": 16, "ms": 20}
PROC_VALID_CPUID = 1 << 24
MOD_CHECK_VALID = 0b11111
MEMORY_VALID_FIXED, MEMORY_VALID_OEM_DATA = 0xFFFF, 1 << 16
PCI_BUS_VALID_FIXED, PCI_BUS_VALID_OEM_DATA = 0x1FF, 1 << 9
PLATFORM_SPECIFIC_VALID_FIXED, PLATFORM_SPECIFIC_VALID_OEM_DATA = 0b11, 1 << 2

BodyDecoder = Callable[[bytes, int, int, SectionHeader], Section]


def _encode_checks(checks: tuple[ModCheck, ...]) -> bytes:
    return b"".join(
        MOD_CHECK.pack(MOD_CHECK_VALID, *(getattr(c, f) for f in ModCheck.FIELDS)) for c in checks
    )


def encode_body(section: Section) -> bytes:
    """The body bytes of a typed section (UnknownSection: its raw body)."""
    if isinstance(section, ProcessorSection):
        valid = PROC_VALID_FIXED
        valid |= len(section.cache_checks) << PROC_COUNT_SHIFTS["cache"]
        valid |= len(section.tlb_checks) << PROC_COUNT_SHIFTS["tlb"]
        valid |= len(section.bus_checks) << PROC_COUNT_SHIFTS["bus"]
        fixed = PROCESSOR_FIXED.pack(
            valid, section.proc_error_map, section.proc_state_parameter, section.proc_cr_lid
        )
        checks = section.cache_checks + section.tlb_checks + section.bus_checks
        return fixed + _encode_checks(checks)
    if isinstance(section, MemorySection):
        valid = MEMORY_VALID_FIXED | (MEMORY_VALID_OEM_DATA if section.oem_data else 0)
        names = section.U64_HEAD + section.U16_FIELDS + section.U64_TAIL
        values = (getattr(section, name) for name in names)
        return MEMORY_FIXED.pack(valid, *values, section.oem_id) + section.oem_data
    if isinstance(section, PciBusSection):
        valid = PCI_BUS_VALID_FIXED | (PCI_BUS_VALID_OEM_DATA if section.oem_data else 0)
        tail = (getattr(section, name) for name in section.U64_TAIL)
        fixed = PCI_BUS_FIXED.pack(
            valid, section.err_status, section.err_type, section.bus_id, 0, *tail
        )
        return fixed + section.oem_data
    if isinstance(section, PlatformSpecificSection):
        valid = PLATFORM_SPECIFIC_VALID_FIXED
        valid |= PLATFORM_SPECIFIC_VALID_OEM_DATA if section.oem_data else 0
        fixed = PLATFORM_SPECIFIC_FIXED.pack(valid, section.err_status, section.oem_guid.bytes_le)
        return fixed + section.oem_data
    return section.body


def _where(kind: str, start: int) -> str:
    return f"{kind} section at offset {start - SECTION_HEADER_SIZE}"


def _decode_checks(data: bytes, offset: int, count: int, kind: str) -> tuple[ModCheck, ...]:
    checks = []
    for index in range(count):
        at = offset + index * MOD_CHECK_SIZE
        valid, *values = MOD_CHECK.unpack_from(data, at)
        if valid != MOD_CHECK_VALID:
            raise RecordFormatError(
                f"{kind} check {index} at offset {at}: valid bits 0x{valid:x}, expected "
                f"0x{MOD_CHECK_VALID:x} (all five fields valid)"
            )
        checks.append(ModCheck(**dict(zip(ModCheck.FIELDS, values, strict=True))))
    return tuple(checks)


def decode_processor(data: bytes, start: int, end: int, header: SectionHeader) -> Section:
    where, size = _where("processor", start), end - start
    if size < PROCESSOR_FIXED_BODY:
        raise RecordFormatError(
            f"{where}: body of {size} bytes is shorter than its {PROCESSOR_FIXED_BODY}-byte "
            f"fixed part"
        )
    valid, error_map, state, cr_lid = PROCESSOR_FIXED.unpack_from(data, start)
    counts = {name: (valid >> shift) & 0xF for name, shift in PROC_COUNT_SHIFTS.items()}
    needed = PROCESSOR_FIXED_BODY + MOD_CHECK_SIZE * sum(counts.values())
    needed += PROCESSOR_STATIC_INFO_SIZE if valid & PROC_VALID_PSI_STATIC else 0
    needed += PROCESSOR_CPUID_INFO_SIZE if valid & PROC_VALID_CPUID else 0
    if needed > size:
        declared = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
        raise RecordFormatError(
            f"{where}: valid word 0x{valid:x} (checks: {declared or 'none'}) needs {needed} "
            f"body bytes but the section has {size}"
        )
    unsupported = valid & ~(PROC_VALID_FIXED | 0xFFF << PROC_COUNT_SHIFTS["cache"])
    if unsupported:
        raise RecordFormatError(
            f"{where}: valid word 0x{valid:x} declares content this codec does not decode "
            f"(bits 0x{unsupported:x}: static info, reg-file/MS checks, CPUID or reserved)"
        )
    if valid & PROC_VALID_FIXED != PROC_VALID_FIXED:
        raise RecordFormatError(
            f"{where}: valid word 0x{valid:x} lacks proc_error_map/proc_state_param/"
            f"proc_cr_lid, which this codec always writes"
        )
    if needed != size:
        raise RecordFormatError(f"{where}: {size - needed} unexplained bytes after the checks")
    at = start + PROCESSOR_FIXED_BODY
    arrays = []
    for name in ("cache", "tlb", "bus"):
        arrays.append(_decode_checks(data, at, counts[name], name))
        at += counts[name] * MOD_CHECK_SIZE
    return ProcessorSection(
        proc_error_map=error_map,
        proc_state_parameter=state,
        proc_cr_lid=cr_lid,
        cache_checks=arrays[0],
        tlb_checks=arrays[1],
        bus_checks=arrays[2],
        error_recovery_info=header.error_recovery_info,
        revision=header.revision,
    )


def _oem_data(
    data: bytes, start: int, end: int, fixed: struct.Struct, kind: str, valid_bits: tuple[int, int]
) -> tuple[tuple[Any, ...], bytes]:
    """The fixed fields and oem_data of a body with a valid word, checked."""
    where, size = _where(kind, start), end - start
    if size < fixed.size:
        raise RecordFormatError(
            f"{where}: body of {size} bytes is shorter than its {fixed.size}-byte fixed part"
        )
    values = fixed.unpack_from(data, start)
    oem_data = data[start + fixed.size : end]
    if len(oem_data) > MAX_OEM_DATA:
        raise RecordFormatError(
            f"{where}: oem_data of {len(oem_data)} bytes at offset {start + fixed.size} "
            f"exceeds the {MAX_OEM_DATA}-byte limit"
        )
    fixed_bits, oem_bit = valid_bits
    expected = fixed_bits | (oem_bit if oem_data else 0)
    if values[0] != expected:
        raise RecordFormatError(
            f"{where}: valid word 0x{values[0]:x} at offset {start}, expected 0x{expected:x} "
            f"(every fixed field valid, oem_data bit set exactly when oem_data is present)"
        )
    return values[1:], oem_data


def decode_memory(data: bytes, start: int, end: int, header: SectionHeader) -> Section:
    values, oem_data = _oem_data(
        data,
        start,
        end,
        MEMORY_FIXED,
        "platform memory",
        (MEMORY_VALID_FIXED, MEMORY_VALID_OEM_DATA),
    )
    names = MemorySection.U64_HEAD + MemorySection.U16_FIELDS + MemorySection.U64_TAIL
    fields = dict(zip(names, values[:-1], strict=True))
    return MemorySection(
        **fields,
        oem_id=bytes(values[-1]),
        oem_data=oem_data,
        error_recovery_info=header.error_recovery_info,
        revision=header.revision,
    )


def decode_pci_bus(data: bytes, start: int, end: int, header: SectionHeader) -> Section:
    values, oem_data = _oem_data(
        data, start, end, PCI_BUS_FIXED, "PCI bus", (PCI_BUS_VALID_FIXED, PCI_BUS_VALID_OEM_DATA)
    )
    err_status, err_type, bus_id, reserved, *tail = values
    if reserved != 0:
        raise RecordFormatError(
            f"{_where('PCI bus', start)}: reserved u32 at offset {start + 20} is not zero"
        )
    return PciBusSection(
        err_status=err_status,
        err_type=err_type,
        bus_id=bus_id,
        **dict(zip(PciBusSection.U64_TAIL, tail, strict=True)),
        oem_data=oem_data,
        error_recovery_info=header.error_recovery_info,
        revision=header.revision,
    )


def decode_platform_specific(data: bytes, start: int, end: int, header: SectionHeader) -> Section:
    valid_bits = (PLATFORM_SPECIFIC_VALID_FIXED, PLATFORM_SPECIFIC_VALID_OEM_DATA)
    values, oem_data = _oem_data(
        data, start, end, PLATFORM_SPECIFIC_FIXED, "platform-specific", valid_bits
    )
    err_status, guid_bytes = values
    return PlatformSpecificSection(
        err_status=err_status,
        oem_guid=uuid.UUID(bytes_le=bytes(guid_bytes)),
        oem_data=oem_data,
        error_recovery_info=header.error_recovery_info,
        revision=header.revision,
    )


BODY_DECODERS: dict[uuid.UUID, BodyDecoder] = {
    guids.PROCESSOR_GUID: decode_processor,
    guids.PLATFORM_MEMORY_GUID: decode_memory,
    guids.PCI_BUS_GUID: decode_pci_bus,
    guids.PLATFORM_SPECIFIC_GUID: decode_platform_specific,
}
