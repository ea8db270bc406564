"""Tests of xenmca.layout: the SAL binary error record's sizes, offsets and byte order, its
round trips, its text form and the default sections (bad bytes are in test_layout_decode.py,
the proto conversion in test_layout_proto.py)."""

from __future__ import annotations

import random
import struct
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from layout_helpers import OEM_GUID, PLATFORM, PROPERTY, TS, records, sample_record

from xenmca.layout import guids
from xenmca.layout.api import (
    MAX_OEM_DATA,
    MAX_SECTIONS_PER_RECORD,
    MemorySection,
    ModCheck,
    PciBusSection,
    PlatformSpecificSection,
    ProcessorSection,
    RecordFormatError,
    SalRecord,
    Section,
    UnknownSection,
    decode_record,
    default_record_for_type,
    default_section_for_type,
    encode_record,
    format_record,
    max_encoded_size,
    record_length,
    sections_from_proto,
    sections_to_proto,
)
from xenmca.layout.header import RECORD_HEADER, SECTION_HEADER, encode_timestamp, from_bcd, to_bcd
from xenmca.layout.limits import MAX_PROCESSOR_SECTION

# --- layout: sizes, offsets, byte order -------------------------------------------------


def test_header_structs_are_40_and_24_bytes() -> None:
    assert RECORD_HEADER.size == 40
    assert SECTION_HEADER.size == 24


def test_hand_computed_byte_vector() -> None:
    expected = bytes.fromhex(
        # record header: id, revision (minor 00, major 03), severity 2, valid bit 0, len 98
        "0807060504030201"
        "0003"
        "02"
        "01"
        "62000000"
        # timestamp 2006-07-14 12:34:56: sec, min, hour, reserved, day, month, year, century
        "5634120014070620"
        # platform GUID 12345678-9abc-def0-1122-334455667788 in EFI order
        "78563412bc9af0de1122334455667788"
        # section header: GUID e429faf7-..., revision 3.0, recovery 0x81, reserved, len 58
        "f7fa29e4b73cd411bca70080c73c8881"
        "0003"
        "81"
        "00"
        "3a000000"
        # body: valid (err_status, guid, oem_data), err_status, OEM GUID, oem_data
        "0700000000000000"
        "1100000000000000"
        "33221100554477668899aabbccddeeff"
        "aabb"
    )
    assert len(expected) == 98
    assert encode_record(sample_record()) == expected
    assert decode_record(expected) == sample_record()
    assert record_length(expected + b"\0" * 10) == 98


def test_section_guids_in_efi_byte_order() -> None:
    assert guids.PROCESSOR_GUID.bytes_le == bytes.fromhex("f1fa29e4b73cd411bca70080c73c8881")
    for n, guid in enumerate(
        [
            guids.PROCESSOR_GUID,
            guids.PLATFORM_MEMORY_GUID,
            guids.PLATFORM_SEL_GUID,
            guids.PCI_BUS_GUID,
            guids.PLATFORM_SMBIOS_GUID,
            guids.PCI_COMPONENT_GUID,
            guids.PLATFORM_SPECIFIC_GUID,
            guids.HOST_CONTROLLER_GUID,
            guids.PLATFORM_BUS_GUID,
        ],
        start=1,
    ):
        assert str(guid) == f"e429faf{n}-3cb7-11d4-bca7-0080c73c8881"
        assert guids.guid_from_efi_bytes(guids.guid_to_efi_bytes(guid)) == guid
    section = encode_record(SalRecord(1, 2, TS, (MemorySection(),)))[40:56]
    assert section == guids.PLATFORM_MEMORY_GUID.bytes_le


def test_section_sizes_follow_sal_h() -> None:
    def length(section: Section) -> int:
        return len(encode_record(SalRecord(1, 2, TS, (section,)))) - 40

    assert length(ProcessorSection()) == 24 + 32
    three = (ModCheck(),) * 3
    assert length(ProcessorSection(cache_checks=three, tlb_checks=three[:1])) == 24 + 32 + 4 * 48
    assert length(MemorySection(oem_data=b"xyz")) == 24 + 96 + 3
    assert length(PciBusSection()) == 24 + 72
    assert length(PlatformSpecificSection(oem_data=b"1")) == 24 + 32 + 1


def test_processor_valid_word_and_check_layout() -> None:
    check = ModCheck(check_info=1, requestor_identifier=2, responder_identifier=3,
                     target_identifier=4, precise_ip=5)  # fmt: skip
    section = ProcessorSection(proc_error_map=7, cache_checks=(check,), bus_checks=(check, check))
    body = encode_record(SalRecord(1, 2, TS, (section,)))[64:]
    (valid,) = struct.unpack_from("<Q", body)
    assert valid == 0b111 | 1 << 4 | 0 << 8 | 2 << 12
    assert struct.unpack_from("<6Q", body, 32) == (0x1F, 1, 2, 3, 4, 5)


def test_bcd_and_timestamp() -> None:
    assert to_bcd(59) == 0x59 and to_bcd(0) == 0
    assert from_bcd(0x99, "x", 0) == 99
    with pytest.raises(RecordFormatError, match="bad BCD byte 0x1a in test at offset 7"):
        from_bcd(0x1A, "test", 7)
    assert encode_timestamp(TS) == bytes([0x56, 0x34, 0x12, 0, 0x14, 0x07, 0x06, 0x20])


def test_timestamp_normalized_to_utc_seconds() -> None:
    local = datetime(2006, 7, 14, 21, 34, 56, 999, tzinfo=timezone(timedelta(hours=9)))
    assert SalRecord(1, 2, local).timestamp == TS
    with pytest.raises(ValueError, match="timezone-aware"):
        SalRecord(1, 2, datetime(2006, 7, 14))


# --- round trips ------------------------------------------------------------------------


@PROPERTY
@given(records())
def test_encode_decode_round_trip(record: SalRecord) -> None:
    data = encode_record(record)
    assert len(data) <= max_encoded_size()
    assert struct.unpack_from("<I", data, 12)[0] == len(data)
    assert decode_record(data) == record
    assert encode_record(decode_record(data)) == data


def test_unknown_section_round_trips() -> None:
    unknown = UnknownSection(guid=guids.PLATFORM_SMBIOS_GUID, body=b"\x01\x02\x03", revision=(1, 2))
    record = SalRecord(9, 0, TS, (unknown, ProcessorSection()))
    decoded = decode_record(encode_record(record))
    assert decoded == record and isinstance(decoded.sections[0], UnknownSection)
    with pytest.raises(ValueError, match="decoded section kind"):
        UnknownSection(guid=guids.PROCESSOR_GUID)


def test_max_encoded_size_is_reached_by_the_largest_record() -> None:
    full = (ModCheck(),) * 15
    largest = ProcessorSection(cache_checks=full, tlb_checks=full, bus_checks=full)
    record = SalRecord(1, 2, TS, (largest,) * MAX_SECTIONS_PER_RECORD)
    assert len(encode_record(record)) == max_encoded_size() == 40 + 8 * MAX_PROCESSOR_SECTION
    assert max_encoded_size(2) == max_encoded_size()
    with pytest.raises(ValueError):
        max_encoded_size(4)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ProcessorSection(cache_checks=(ModCheck(),) * 16), "at most 15 checks"),
        (lambda: MemorySection(oem_data=bytes(MAX_OEM_DATA + 1)), "oem_data must be at most"),
        (lambda: MemorySection(node=0x10000), r"platform_memory.node must be a u16"),
        (lambda: MemorySection(oem_id=b"short"), "oem_id must be exactly 16 bytes"),
        (lambda: PciBusSection(err_type=-1), "pci_bus.err_type"),
        (lambda: ProcessorSection(error_recovery_info=256), "error_recovery_info must be a u8"),
        (lambda: ProcessorSection(revision=(100, 0)), "revision major must be 0..99"),
        (lambda: SalRecord(1, 3, TS), "severity must be 0"),
        (lambda: SalRecord(1 << 64, 2, TS), "record_id must be a u64"),
        (lambda: SalRecord(1, 2, TS, (ProcessorSection(),) * 9), "at most 8 sections"),
    ],
)
def test_limits_are_enforced(build, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        build()


# --- text -------------------------------------------------------------------------------


def test_format_record_mentions_the_fields() -> None:
    record = SalRecord(
        0x42,
        2,
        TS,
        (
            ProcessorSection(proc_cr_lid=0x3000000, cache_checks=(ModCheck(check_info=0x412),)),
            MemorySection(physical_addr=0x1234_5680, node=3, oem_data=b"\x01\x02"),
            PciBusSection(bus_id=0x12),
            sample_record().sections[0],
            UnknownSection(guid=guids.PLATFORM_SEL_GUID, body=b"\xfe"),
        ),
        platform_guid=PLATFORM,
    )
    text = format_record(record)
    for needle in [
        "id 0x0000000000000042",
        "severity corrected (2)",
        "2006-07-14 12:34:56 UTC",
        str(PLATFORM),
        "processor device error (e429faf1-3cb7-11d4-bca7-0080c73c8881)",
        "proc_cr_lid           : 0x0000000003000000",
        "cache check 0:",
        "check_info           : 0x0000000000000412",
        "platform memory device error",
        "physical_addr         : 0x0000000012345680",
        "node                  : 0x0003",
        "0000: 01 02",
        "platform PCI bus error",
        "bus_id                : 0x0012",
        "platform-specific error",
        str(OEM_GUID),
        "platform SEL device error",
        "error_recovery_info 0x81",
        "revision 3.00",
    ]:
        assert needle in text, needle


# --- samples ----------------------------------------------------------------------------


@pytest.mark.parametrize("sal_type", [0, 1, 2, 3])
def test_default_sections_are_plausible(sal_type: int) -> None:
    section = default_section_for_type(sal_type, pcpu=5, rng=random.Random(1))
    assert section == default_section_for_type(sal_type, pcpu=5, rng=random.Random(1))
    if sal_type == 3:
        assert isinstance(section, MemorySection) and section.physical_addr % 64 == 0
    else:
        assert isinstance(section, ProcessorSection) and len(section.cache_checks) == 1
        assert section.proc_cr_lid == 5 << 24
    record = default_record_for_type(sal_type, 1, TS, pcpu=5)
    assert record.severity == (2 if sal_type in (2, 3) else 1)
    assert decode_record(encode_record(record)) == record
    assert sections_from_proto(sections_to_proto(record.sections)) == record.sections
    with pytest.raises(ValueError, match="sal_type"):
        default_section_for_type(4)
