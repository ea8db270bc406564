"""The record header (sal_log_record_header_t, 40 bytes) and section header
(sal_log_section_hdr_t, 24 bytes), with their BCD revision and timestamp fields.

Offsets in the record header: id 0, revision 8 (minor, major), severity 10,
validation_bits 11, len 12, timestamp 16 (second, minute, hour, reserved, day, month,
year, century), platform_guid 24. In the section header: guid 0, revision 16,
error_recovery_info 18, reserved 19, len 20. All little-endian.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from xenmca.layout.errors import RecordFormatError
from xenmca.layout.limits import RECORD_HEADER_SIZE, SECTION_HEADER_SIZE
from xenmca.layout.validate import Revision

RECORD_HEADER = struct.Struct("<QBBBBI8s16s")
SECTION_HEADER = struct.Struct("<16sBBBBI")
assert RECORD_HEADER.size == RECORD_HEADER_SIZE
assert SECTION_HEADER.size == SECTION_HEADER_SIZE

SEVERITY_OFFSET = 10
LEN_OFFSET = 12
TIMESTAMP_OFFSET = 16
PLATFORM_GUID_OFFSET = 24
VALID_PLATFORM_GUID = 0x01
"""validation_bits bit 0: platform_guid is valid (bit 1, "timestamp not valid", is refused)."""

_TIMESTAMP_PARTS = ("second", "minute", "hour", "reserved", "day", "month", "year", "century")


def to_bcd(value: int) -> int:
    """One byte of packed BCD for 0..99."""
    if not 0 <= value <= 99:
        raise ValueError(f"BCD holds 0..99, got {value}")
    return (value // 10) << 4 | value % 10


def from_bcd(byte: int, what: str, offset: int) -> int:
    """The 0..99 value of a packed BCD byte, or RecordFormatError naming ``what``."""
    high, low = byte >> 4, byte & 0x0F
    if high > 9 or low > 9:
        raise RecordFormatError(f"bad BCD byte 0x{byte:02x} in {what} at offset {offset}")
    return high * 10 + low


def encode_timestamp(ts: datetime) -> bytes:
    """sal_log_timestamp_t for a UTC datetime (seconds resolution)."""
    ts = ts.astimezone(UTC)
    parts = (ts.second, ts.minute, ts.hour, 0, ts.day, ts.month, ts.year % 100, ts.year // 100)
    return bytes(to_bcd(p) for p in parts)


def decode_timestamp(data: bytes, offset: int) -> datetime:
    """The UTC datetime in the 8 BCD bytes of a sal_log_timestamp_t at ``offset``."""
    values = [
        from_bcd(byte, f"timestamp {name}", offset + i)
        for i, (byte, name) in enumerate(zip(data, _TIMESTAMP_PARTS, strict=True))
    ]
    second, minute, hour, reserved, day, month, year, century = values
    if reserved != 0:
        raise RecordFormatError(f"timestamp reserved byte at offset {offset + 3} is not zero")
    try:
        return datetime(century * 100 + year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise RecordFormatError(f"invalid timestamp at offset {offset}: {exc}") from None


def encode_revision(revision: Revision) -> tuple[int, int]:
    """(minor, major) BCD bytes, in their order in sal_log_revision_t."""
    major, minor = revision
    return to_bcd(minor), to_bcd(major)


def decode_revision(minor: int, major: int, what: str, offset: int) -> Revision:
    """(major, minor) from the two BCD bytes of a sal_log_revision_t at ``offset``."""
    return (from_bcd(major, f"{what} major", offset + 1), from_bcd(minor, f"{what} minor", offset))


@dataclass(frozen=True)
class RecordHeader:
    """The raw fields of a record header after the BCD and GUID checks."""

    record_id: int
    revision: Revision
    severity: int
    platform_guid: uuid.UUID | None
    length: int
    timestamp: datetime


def pack_record_header(
    record_id: int,
    revision: Revision,
    severity: int,
    length: int,
    timestamp: datetime,
    platform_guid: uuid.UUID | None,
) -> bytes:
    minor, major = encode_revision(revision)
    bits = 0 if platform_guid is None else VALID_PLATFORM_GUID
    guid_bytes = bytes(16) if platform_guid is None else platform_guid.bytes_le
    return RECORD_HEADER.pack(
        record_id, minor, major, severity, bits, length, encode_timestamp(timestamp), guid_bytes
    )


def unpack_record_header(data: bytes) -> RecordHeader:
    """The record header at the start of ``data`` (which must hold at least 40 bytes)."""
    if len(data) < RECORD_HEADER_SIZE:
        raise RecordFormatError(
            f"truncated record header: need {RECORD_HEADER_SIZE} bytes, got {len(data)}"
        )
    record_id, minor, major, severity, bits, length, stamp, guid_bytes = RECORD_HEADER.unpack_from(
        data, 0
    )
    revision = decode_revision(minor, major, "record revision", 8)
    if severity > 2:
        raise RecordFormatError(
            f"record severity {severity} at offset 10 is not 0 (recoverable), 1 (fatal) "
            f"or 2 (corrected)"
        )
    if bits & ~VALID_PLATFORM_GUID:
        raise RecordFormatError(
            f"unsupported validation_bits 0x{bits:02x} at offset 11 (only bit 0, "
            f"platform_guid valid, may be set)"
        )
    platform_guid: uuid.UUID | None = None
    if bits & VALID_PLATFORM_GUID:
        platform_guid = uuid.UUID(bytes_le=guid_bytes)
    elif guid_bytes != bytes(16):
        raise RecordFormatError(
            f"platform_guid at offset {PLATFORM_GUID_OFFSET} is not zero but its "
            f"validation bit is clear"
        )
    timestamp = decode_timestamp(stamp, TIMESTAMP_OFFSET)
    return RecordHeader(record_id, revision, severity, platform_guid, length, timestamp)


@dataclass(frozen=True)
class SectionHeader:
    """The fields of a section header."""

    guid: uuid.UUID
    revision: Revision
    error_recovery_info: int
    length: int


def pack_section_header(
    guid: uuid.UUID, revision: Revision, error_recovery_info: int, length: int
) -> bytes:
    minor, major = encode_revision(revision)
    return SECTION_HEADER.pack(guid.bytes_le, minor, major, error_recovery_info, 0, length)


def unpack_section_header(data: bytes, offset: int) -> SectionHeader:
    """The section header at ``offset`` of ``data``; offsets in errors are absolute."""
    if len(data) - offset < SECTION_HEADER_SIZE:
        raise RecordFormatError(
            f"truncated section header at offset {offset}: need {SECTION_HEADER_SIZE} "
            f"bytes, {len(data) - offset} left"
        )
    guid_bytes, minor, major, recovery, reserved, length = SECTION_HEADER.unpack_from(data, offset)
    revision = decode_revision(minor, major, "section revision", offset + 16)
    if reserved != 0:
        raise RecordFormatError(f"section header reserved byte at offset {offset + 19} is not 0")
    return SectionHeader(uuid.UUID(bytes_le=guid_bytes), revision, recovery, length)
