"""Shared by the layout tests (test_layout*.py): the hypothesis settings and strategies for
arbitrary SAL records and sections, and a fixed sample record with its timestamp and GUIDs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from xenmca.layout import guids
from xenmca.layout.api import (
    MAX_SECTIONS_PER_RECORD,
    MemorySection,
    ModCheck,
    PciBusSection,
    PlatformSpecificSection,
    ProcessorSection,
    SalRecord,
    Section,
    UnknownSection,
)
from xenmca.layout.sections import MODELED_GUIDS

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
