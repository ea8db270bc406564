"""encode_record / decode_record: SalRecord <-> the SAL binary record.

Decoding is strict and canonical: it returns a record only when encoding that record
gives back exactly the input bytes, and otherwise raises RecordFormatError naming the
problem and its offset. No other exception escapes for any input bytes.
"""

from __future__ import annotations

import struct

from xenmca.layout.bodies import BODY_DECODERS, encode_body
from xenmca.layout.errors import RecordFormatError
from xenmca.layout.header import (
    LEN_OFFSET,
    pack_record_header,
    pack_section_header,
    unpack_record_header,
    unpack_section_header,
)
from xenmca.layout.limits import (
    MAX_SECTION_SIZE,
    MAX_SECTIONS_PER_RECORD,
    RECORD_HEADER_SIZE,
    SECTION_HEADER_SIZE,
    max_encoded_size,
)
from xenmca.layout.record import SalRecord
from xenmca.layout.sections import Section, UnknownSection


def encode_section(section: Section) -> bytes:
    """One section: its 24-byte header followed by its body."""
    body = encode_body(section)
    length = SECTION_HEADER_SIZE + len(body)
    if length > MAX_SECTION_SIZE:
        raise RecordFormatError(
            f"{section.KIND} section of {length} bytes exceeds {MAX_SECTION_SIZE}"
        )
    header = pack_section_header(
        section.guid, section.revision, section.error_recovery_info, length
    )
    return header + body


def encode_record(record: SalRecord) -> bytes:
    """The SAL binary record: 40-byte header, then each section in order."""
    if len(record.sections) > MAX_SECTIONS_PER_RECORD:
        raise RecordFormatError(
            f"record has {len(record.sections)} sections, at most {MAX_SECTIONS_PER_RECORD}"
        )
    body = b"".join(encode_section(section) for section in record.sections)
    length = RECORD_HEADER_SIZE + len(body)
    if length > max_encoded_size():
        raise RecordFormatError(f"record of {length} bytes exceeds {max_encoded_size()}")
    header = pack_record_header(
        record.record_id,
        record.revision,
        record.severity,
        length,
        record.timestamp,
        record.platform_guid,
    )
    return header + body


def record_length(data: bytes) -> int:
    """The header's len field: how much of a larger buffer (as SAL_GET_STATE_INFO fills
    it) is the record. Raises RecordFormatError when fewer than 40 bytes are given."""
    if len(data) < RECORD_HEADER_SIZE:
        raise RecordFormatError(
            f"truncated record header: need {RECORD_HEADER_SIZE} bytes, got {len(data)}"
        )
    (length,) = struct.unpack_from("<I", data, LEN_OFFSET)
    return int(length)


def _decode_section(data: bytes, offset: int, end: int) -> tuple[Section, int]:
    header = unpack_section_header(data, offset)
    if header.length < SECTION_HEADER_SIZE:
        raise RecordFormatError(
            f"section at offset {offset}: len {header.length} (offset {offset + 20}) is less "
            f"than the {SECTION_HEADER_SIZE}-byte section header"
        )
    if offset + header.length > end:
        raise RecordFormatError(
            f"section at offset {offset}: len {header.length} runs past the record end "
            f"({end - offset} bytes left)"
        )
    if header.length > MAX_SECTION_SIZE:
        raise RecordFormatError(
            f"section at offset {offset}: len {header.length} exceeds the {MAX_SECTION_SIZE}-byte "
            f"section limit"
        )
    start, stop = offset + SECTION_HEADER_SIZE, offset + header.length
    decoder = BODY_DECODERS.get(header.guid)
    if decoder is not None:
        section = decoder(data, start, stop, header)
    else:
        section = UnknownSection(
            guid=header.guid,
            body=data[start:stop],
            error_recovery_info=header.error_recovery_info,
            revision=header.revision,
        )
    return section, stop


def decode_record(data: bytes) -> SalRecord:
    """The SalRecord in ``data``, which must be exactly one encoded record."""
    data = bytes(data)
    header = unpack_record_header(data)
    if header.length != len(data):
        if header.length > len(data):
            problem = f"record truncated: len field says {header.length} bytes"
        elif header.length < RECORD_HEADER_SIZE:
            problem = f"len field {header.length} is smaller than the record header"
        else:
            problem = (
                f"{len(data) - header.length} trailing bytes after a {header.length}-byte record"
            )
        raise RecordFormatError(
            f"{problem} (len at offset {LEN_OFFSET}), buffer holds {len(data)} bytes"
        )
    sections: list[Section] = []
    offset = RECORD_HEADER_SIZE
    while offset < len(data):
        if len(sections) == MAX_SECTIONS_PER_RECORD:
            raise RecordFormatError(
                f"section at offset {offset} is beyond the {MAX_SECTIONS_PER_RECORD}-section limit"
            )
        try:
            section, offset = _decode_section(data, offset, len(data))
        except RecordFormatError:
            raise
        except ValueError as exc:  # a field the dataclasses refuse; should not happen
            raise RecordFormatError(f"section at offset {offset}: {exc}") from None
        sections.append(section)
    return SalRecord(
        record_id=header.record_id,
        severity=header.severity,
        timestamp=header.timestamp,
        sections=tuple(sections),
        platform_guid=header.platform_guid,
        revision=header.revision,
    )
