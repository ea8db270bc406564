"""Raw SAL records as operators hold them: records back to back in one buffer, the id a
firmware writes into a header, and where in the bytes a decoding problem lies.

A file of SAL records (one record, as salinfo saves it, or several concatenated) is
split by each header's len field, and every record is decoded strictly
(:func:`~xenmca.layout.codec.decode_record`). The first problem raises
:class:`RecordStreamError`, which names the record, the byte it starts at and the
problem, and carries the absolute offset of the problem.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from xenmca.layout.codec import decode_record, record_length
from xenmca.layout.errors import RecordFormatError
from xenmca.layout.limits import RECORD_HEADER_SIZE
from xenmca.layout.record import SalRecord

RECORD_ID = struct.Struct("<Q")
"""The header's u64 record id, at offset 0 (sal_log_record_header_t.id)."""
RECORD_ID_OFFSET = 0

_OFFSET = re.compile(r"\boffset (\d+)")


def with_record_id(raw: bytes, record_id: int) -> bytes:
    """``raw`` with the header's id (bytes 0-7, little-endian) set to ``record_id``.

    Every other byte is kept: this is how a firmware numbers a record it was given.
    """
    if len(raw) < RECORD_HEADER_SIZE:
        raise RecordFormatError(
            f"truncated record header: need {RECORD_HEADER_SIZE} bytes, got {len(raw)}"
        )
    if not 0 <= record_id < 1 << 64:
        raise ValueError(f"record_id must be a u64, got {record_id}")
    return RECORD_ID.pack(record_id) + bytes(raw[RECORD_ID.size :])


def problem_offset(error: RecordFormatError, size: int) -> int:
    """The offset, from the record's start, of the problem a decode error describes.

    The codec's messages name offsets from the outside in ("section at offset 40: len
    3 (offset 60) is less than ..."): the last one is the most precise. A message with
    none (a header cut short) points at ``size``, where the missing bytes begin.
    """
    found = _OFFSET.findall(str(error))
    return int(found[-1]) if found else size


@dataclass(frozen=True)
class FoundRecord:
    """One record found in a buffer: its position, its exact bytes and its decoding."""

    index: int
    """0 for the first record of the buffer."""
    offset: int
    """The byte of the buffer where the record starts."""
    raw: bytes
    record: SalRecord


class RecordStreamError(RecordFormatError):
    """A record of a buffer that does not decode.

    str() is ``record N at byte START: PROBLEM`` (N from 1), followed by the absolute
    byte when the record does not start at 0; ``offset`` is that absolute byte.
    """

    def __init__(self, index: int, start: int, offset: int, problem: str) -> None:
        self.index = index
        self.start = start
        self.offset = offset
        self.problem = problem
        where = f" (byte {offset} of the input)" if start else ""
        super().__init__(f"record {index + 1} at byte {start}: {problem}{where}")


def iter_records(data: bytes) -> Iterator[FoundRecord]:
    """The records in ``data``, back to back, each decoded strictly, in order.

    Raises RecordStreamError at the first record that does not decode (a short tail,
    a len field that runs past the end or is smaller than a header, any bad field).
    An empty buffer yields nothing.
    """
    data = bytes(data)
    start, index = 0, 0
    while start < len(data):
        left = len(data) - start
        try:
            length = record_length(data[start:])
        except RecordFormatError as exc:
            raise RecordStreamError(index, start, len(data), str(exc)) from None
        # A len below the header size would never advance: decode the header alone,
        # which names that field.
        chunk = data[start : start + max(length, RECORD_HEADER_SIZE)]
        try:
            record = decode_record(chunk)
        except RecordFormatError as exc:
            where = start + problem_offset(exc, min(left, len(chunk)))
            raise RecordStreamError(index, start, where, str(exc)) from None
        yield FoundRecord(index, start, chunk, record)
        start += length
        index += 1


def decode_records(data: bytes) -> list[FoundRecord]:
    """Every record in ``data``; RecordStreamError when one does not decode or there is none."""
    found = list(iter_records(data))
    if not found:
        raise RecordStreamError(0, 0, 0, "no SAL record (the input is empty)")
    return found
