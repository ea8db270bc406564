"""Tests of xenmca.layout: the SAL binary error record (encode, decode, print, proto)."""

from __future__ import annotations

import random
import struct
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    record_from_proto,
    record_length,
    record_to_proto,
    sections_from_proto,
    sections_to_proto,
)
from xenmca.layout.header import RECORD_HEADER, SECTION_HEADER, encode_timestamp, from_bcd, to_bcd
from xenmca.layout.limits import MAX_PROCESSOR_SECTION
from xenmca.layout.sections import DEFAULT_SECTION_REVISION, MODELED_GUIDS
from xenmca.record.v1 import record_pb2

PROPERTY = settings(
    derandomize=True,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u64 = st.integers(0, (1 << 64) - 1)
revisions = st.tuples(st.integers(0, 99), st.integers(0, 99))
uuids = st.uuids()
oem = st.binary(max_size=64)
timestamps = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
).map(lambda ts: ts.replace(microsecond=0))


def _header_fields() -> dict[str, st.SearchStrategy[object]]:
    return {"error_recovery_info": u8, "revision": revisions}


mod_checks = st.builds(ModCheck, **{name: u64 for name in ModCheck.FIELDS})


def _checks(max_checks: int) -> st.SearchStrategy[tuple[ModCheck, ...]]:
    return st.lists(mod_checks, max_size=max_checks).map(tuple)


def processor_sections(max_checks: int = 15) -> st.SearchStrategy[ProcessorSection]:
    return st.builds(
        ProcessorSection,
        proc_error_map=u64,
        proc_state_parameter=u64,
        proc_cr_lid=u64,
        cache_checks=_checks(max_checks),
        tlb_checks=_checks(max_checks),
        bus_checks=_checks(max_checks),
        **_header_fields(),
    )


memory_sections = st.builds(
    MemorySection,
    **{name: u64 for name in MemorySection.U64_HEAD + MemorySection.U64_TAIL},
    **{name: u16 for name in MemorySection.U16_FIELDS},
    oem_id=st.binary(min_size=16, max_size=16),
    oem_data=oem,
    **_header_fields(),
)
pci_sections = st.builds(
    PciBusSection,
    err_status=u64,
    err_type=u16,
    bus_id=u16,
    **{name: u64 for name in PciBusSection.U64_TAIL},
    oem_data=oem,
    **_header_fields(),
)
platform_sections = st.builds(
    PlatformSpecificSection, err_status=u64, oem_guid=uuids, oem_data=oem, **_header_fields()
)
unknown_sections = st.builds(
    UnknownSection,
    guid=uuids.filter(lambda g: g not in MODELED_GUIDS)
    | st.sampled_from([guids.PLATFORM_SEL_GUID, guids.PLATFORM_BUS_GUID]),
    body=st.binary(max_size=64),
    **_header_fields(),
)


def sections(max_checks: int = 15) -> st.SearchStrategy[Section]:
    return st.one_of(
        processor_sections(max_checks),
        memory_sections,
        pci_sections,
        platform_sections,
        unknown_sections,
    )


def records(
    max_sections: int = MAX_SECTIONS_PER_RECORD, max_checks: int = 15
) -> st.SearchStrategy[SalRecord]:
    return st.builds(
        SalRecord,
        record_id=u64,
        severity=st.integers(0, 2),
        timestamp=timestamps,
        sections=st.lists(sections(max_checks), max_size=max_sections).map(tuple),
        platform_guid=st.none() | uuids,
        revision=revisions,
    )


small_records = records(max_sections=3, max_checks=2)

TS = datetime(2006, 7, 14, 12, 34, 56, tzinfo=UTC)
PLATFORM = uuid.UUID("12345678-9abc-def0-1122-334455667788")
OEM_GUID = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")


def sample_record() -> SalRecord:
    return SalRecord(
        record_id=0x0102030405060708,
        severity=2,
        timestamp=TS,
        platform_guid=PLATFORM,
        revision=(3, 0),
        sections=(
            PlatformSpecificSection(
                err_status=0x11, oem_guid=OEM_GUID, oem_data=b"\xaa\xbb", error_recovery_info=0x81
            ),
        ),
    )


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


# --- proto ------------------------------------------------------------------------------


known_sections = st.one_of(processor_sections(), memory_sections, pci_sections, platform_sections)


@PROPERTY
@given(st.lists(known_sections, max_size=MAX_SECTIONS_PER_RECORD))
def test_proto_round_trip(items: list[Section]) -> None:
    canonical = tuple(
        type(s)(**{**s.__dict__, "revision": DEFAULT_SECTION_REVISION})  # type: ignore[arg-type]
        for s in items
    )
    msgs = sections_to_proto(canonical)
    assert sections_from_proto(msgs) == canonical
    wire = [record_pb2.Section.FromString(m.SerializeToString()) for m in msgs]
    assert sections_to_proto(sections_from_proto(wire)) == msgs


def _bad(**kwargs: object) -> record_pb2.Section:
    return record_pb2.Section(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("msg", "message"),
    [
        (_bad(error_recovery_info=1), r"sections\[0\]\.body is not set"),
        (_bad(platform_memory={"node": 70000}), r"sections\[0\]\.platform_memory\.node .* 70000"),
        (_bad(pci_bus={"bus_id": 65536}), r"sections\[0\]\.pci_bus\.bus_id"),
        (_bad(processor={"tlb_checks": [{}] * 16}), r"processor\.tlb_checks: at most 15"),
        (
            _bad(platform_memory={"oem_id": b"x" * 15}),
            r"platform_memory\.oem_id must be exactly 16",
        ),
        (_bad(platform_specific={"guid": b"x"}), r"platform_specific\.guid must be exactly 16"),
        (_bad(pci_bus={"oem_data": bytes(1025)}), r"pci_bus\.oem_data must be at most 1024"),
        (_bad(error_recovery_info=256, pci_bus={}), r"error_recovery_info must be a u8"),
    ],
)
def test_sections_from_proto_validates(msg: record_pb2.Section, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sections_from_proto([msg])


def test_sections_from_proto_limits_count_and_accepts_empty_ids() -> None:
    with pytest.raises(ValueError, match="at most 8 sections"):
        sections_from_proto([_bad(pci_bus={})] * 9)
    (memory, platform) = sections_from_proto([_bad(platform_memory={}), _bad(platform_specific={})])
    assert isinstance(memory, MemorySection) and memory.oem_id == bytes(16)
    assert isinstance(platform, PlatformSpecificSection) and platform.oem_guid.int == 0


def test_unknown_sections_in_proto_raise_or_are_skipped() -> None:
    unknown = UnknownSection(guid=guids.PLATFORM_SEL_GUID)
    with pytest.raises(ValueError, match="no proto form"):
        sections_to_proto([unknown])
    assert sections_to_proto([unknown, PciBusSection()], skip_unknown=True) == sections_to_proto(
        [PciBusSection()]
    )


def test_record_to_and_from_proto() -> None:
    record = SalRecord(7, 2, TS, (MemorySection(node=1), UnknownSection(guid=uuid.uuid4())))
    msg = record_to_proto(record, pcpu=3, type_number=3, overflow=True, created_monotonic_ns=9)
    assert msg.pcpu == 3 and msg.record_id == 7 and msg.overflow
    assert msg.type == record_pb2.RECORD_TYPE_CPE and msg.severity == record_pb2.SEVERITY_CORRECTED
    assert msg.created_at.ToDatetime(tzinfo=UTC) == TS
    assert len(msg.sections) == 1 and msg.raw == encode_record(record)
    assert record_from_proto(msg) == record
    msg.record_id = 8
    with pytest.raises(ValueError, match="record_id 8 disagrees"):
        record_from_proto(msg)


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
