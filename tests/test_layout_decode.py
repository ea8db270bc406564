"""Tests of xenmca.layout decoding bad bytes: errors name the problem and the offset,
limits, truncations, mutations and arbitrary bytes decode canonically or raise."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from layout_helpers import PROPERTY, TS, small_records, u8

from xenmca.layout.api import (
    MAX_OEM_DATA,
    MemorySection,
    ModCheck,
    PciBusSection,
    PlatformSpecificSection,
    ProcessorSection,
    RecordFormatError,
    SalRecord,
    decode_record,
    encode_record,
)

# --- decoding bad bytes -----------------------------------------------------------------


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


VALID = encode_record(
    SalRecord(5, 2, TS, (ProcessorSection(cache_checks=(ModCheck(check_info=1),)), MemorySection()))
)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (VALID[:39], "truncated record header: need 40 bytes, got 39"),
        (VALID[:-1], "record truncated: len field says"),
        (VALID + b"\0", "1 trailing bytes"),
        (_patch(VALID, 12, "<I", 20), "smaller than the record header"),
        (_patch(VALID, 10, "<B", 3), "severity 3 at offset 10"),
        (_patch(VALID, 11, "<B", 2), "validation_bits 0x02 at offset 11"),
        (_patch(VALID, 24, "<B", 1), "platform_guid at offset 24 is not zero"),
        (_patch(VALID, 16, "<B", 0x5A), "bad BCD byte 0x5a in timestamp second at offset 16"),
        (_patch(VALID, 21, "<B", 0x13), "invalid timestamp at offset 16"),
        (_patch(VALID, 19, "<B", 1), "reserved byte at offset 19"),
        (_patch(VALID, 8, "<B", 0xA0), "record revision minor at offset 8"),
        (_patch(VALID, 60, "<I", 23), "section at offset 40: len 23 .* less than"),
        (_patch(VALID, 60, "<I", 5000), "section at offset 40: len 5000 runs past the record end"),
        (_patch(VALID, 64, "<Q", 0b111 | 3 << 4), r"needs 176 body bytes but the section has 80"),
        (_patch(VALID, 64, "<Q", 0b111 | 1 << 4 | 1 << 16), "needs 128 body bytes"),
        (_patch(VALID, 64, "<Q", 0b011 | 1 << 4), "lacks proc_error_map"),
        (_patch(VALID, 64, "<Q", 0b111 | 1 << 30 | 1 << 4), "bits 0x40000000"),
        (_patch(VALID, 96, "<Q", 0xF), r"cache check 0 at offset 96: valid bits 0xf"),
        (_patch(VALID, 64 + 80 + 24, "<Q", 0x1FFFF), "valid word 0x1ffff at offset 168"),
        (_patch(VALID, 144 + 19, "<B", 7), "reserved byte at offset 163"),
    ],
)
def test_decode_errors_name_the_problem_and_offset(data: bytes, message: str) -> None:
    with pytest.raises(RecordFormatError, match=message):
        decode_record(data)


def test_decode_rejects_more_sections_than_the_limit() -> None:
    one = encode_record(SalRecord(1, 2, TS, (PciBusSection(),)))[40:]
    data = _patch(VALID[:40] + one * 9, 12, "<I", 40 + 9 * len(one))
    with pytest.raises(RecordFormatError, match="beyond the 8-section limit"):
        decode_record(data)


def test_decode_rejects_oversized_oem_data_and_nonzero_pci_reserved() -> None:
    pci = encode_record(SalRecord(1, 2, TS, (PciBusSection(),)))
    with pytest.raises(RecordFormatError, match="reserved u32 at offset 84"):
        decode_record(_patch(pci, 84, "<I", 1))
    big = SalRecord(1, 2, TS, (PlatformSpecificSection(oem_data=bytes(MAX_OEM_DATA)),))
    data = bytearray(encode_record(big) + b"\0")
    struct.pack_into("<I", data, 12, len(data))
    struct.pack_into("<I", data, 60, len(data) - 40)
    with pytest.raises(RecordFormatError, match="exceeds the 1024-byte limit"):
        decode_record(bytes(data))


@PROPERTY
@given(small_records)
def test_every_truncation_is_refused(record: SalRecord) -> None:
    data = encode_record(record)
    for cut in range(len(data)):
        with pytest.raises(RecordFormatError):
            decode_record(data[:cut])


@PROPERTY
@given(small_records)
def test_truncation_with_a_consistent_len_never_gives_a_wrong_record(record: SalRecord) -> None:
    data = encode_record(record)
    for cut in range(40, len(data)):
        prefix = _patch(data[:cut], 12, "<I", cut)
        try:
            decoded = decode_record(prefix)
        except RecordFormatError:
            continue
        assert decoded.sections == record.sections[: len(decoded.sections)]
        assert encode_record(decoded) == prefix


@PROPERTY
@given(small_records, st.lists(st.tuples(st.integers(0), u8), min_size=1, max_size=4))
def test_mutations_decode_canonically_or_raise(
    record: SalRecord, edits: list[tuple[int, int]]
) -> None:
    data = bytearray(encode_record(record))
    for position, value in edits:
        data[position % len(data)] = value
    try:
        decoded = decode_record(bytes(data))
    except RecordFormatError:
        return
    assert encode_record(decoded) == bytes(data)


@PROPERTY
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_canonically_or_raise(tail: bytes) -> None:
    data = _patch(VALID[:40] + tail, 12, "<I", 40 + len(tail))
    for candidate in (tail, data):
        try:
            decoded = decode_record(candidate)
        except RecordFormatError:
            continue
        assert encode_record(decoded) == candidate
