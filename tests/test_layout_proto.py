"""Tests of xenmca.layout's proto conversion: sections and records to and from
record_pb2, validation, limits and unknown sections."""

from __future__ import annotations

import uuid
from datetime import UTC

import pytest
from hypothesis import given
from hypothesis import strategies as st
from layout_helpers import (
    PROPERTY,
    TS,
    memory_sections,
    pci_sections,
    platform_sections,
    processor_sections,
)

from xenmca.layout import guids
from xenmca.layout.api import (
    MAX_SECTIONS_PER_RECORD,
    MemorySection,
    PciBusSection,
    PlatformSpecificSection,
    SalRecord,
    Section,
    UnknownSection,
    encode_record,
    record_from_proto,
    record_to_proto,
    sections_from_proto,
    sections_to_proto,
)
from xenmca.layout.sections import DEFAULT_SECTION_REVISION
from xenmca.record.v1 import record_pb2

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
