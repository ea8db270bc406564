"""The sections a GET shows are encoded when a record is created; they must equal what
decoding the record's raw bytes gives, for every way a record is made, and a record
loaded from a state dir (nothing encoded) must show the same."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from xenmca.layout.codec import encode_record
from xenmca.layout.samples import default_record_for_type
from xenmca.pcpu import records
from xenmca.pcpu.durable import FirmwareDatabase
from xenmca.pcpu.firmware import Injection, PcpuFirmware
from xenmca.pcpu.model import StoredRecord
from xenmca.pcpu.store import RawFactory, RecordStore
from xenmca.record.v1 import record_pb2

CMC = record_pb2.RECORD_TYPE_CMC
CPE = record_pb2.RECORD_TYPE_CPE
CORRECTED = record_pb2.SEVERITY_CORRECTED
WALL_NS = 1_764_000_000_123_456_789


def stored(make: RawFactory, record_type: int, severity: int, record_id: int) -> StoredRecord:
    raw, shown = make(record_id, WALL_NS)
    return StoredRecord(record_id, record_type, severity, WALL_NS, 5, raw, shown_sections=shown)


def assert_shown_as_decoded(pcpu: int, record: StoredRecord) -> None:
    assert record.shown_sections is not None
    shown = records.error_record(pcpu, record)
    assert len(shown.sections) >= 1
    assert shown == records.error_record(pcpu, replace(record, shown_sections=None))


@pytest.mark.parametrize("record_type", [CMC, CPE])
@pytest.mark.parametrize("severity", [CORRECTED, record_pb2.SEVERITY_RECOVERABLE])
def test_default_sections_shown_as_decoded(record_type: int, severity: int) -> None:
    for pcpu in (0, 7, 4095):
        make = records.raw_factory(pcpu, record_type, severity, None)
        for record_id in range(1, 60):
            assert_shown_as_decoded(pcpu, stored(make, record_type, severity, record_id))


def test_given_sections_shown_as_decoded() -> None:
    sample = default_record_for_type(2, 1, datetime.now(UTC), pcpu=3)
    make = records.raw_factory(3, CMC, CORRECTED, sample.sections)
    first, second = (stored(make, CMC, CORRECTED, rid) for rid in (10, 11))
    assert first.shown_sections == second.shown_sections  # encoded once per injection
    assert_shown_as_decoded(3, first)
    assert_shown_as_decoded(3, second)


def test_a_real_records_copies_show_its_sections() -> None:
    raw = encode_record(default_record_for_type(3, 99, datetime.now(UTC), pcpu=1))
    make = records.given_raw_factory(raw)
    copy = stored(make, CPE, CORRECTED, 42)
    assert copy.raw[:8] == (42).to_bytes(8, "little")
    assert_shown_as_decoded(1, copy)


async def test_a_record_loaded_from_the_state_dir_shows_the_same(tmp_path: Path) -> None:
    database = FirmwareDatabase(tmp_path)
    firmware = PcpuFirmware(RecordStore(0, 16, database.backend(0)))
    await firmware.inject(Injection(CMC, CORRECTED, 3))
    created = firmware.store.pending_records(CMC)
    await firmware.close()
    database.close()

    reopened = FirmwareDatabase(tmp_path)
    loaded = PcpuFirmware(RecordStore(0, 16, reopened.backend(0)))
    again = loaded.store.pending_records(CMC)
    assert [r.shown_sections is None for r in again] == [True] * 3
    assert [records.error_record(0, r) for r in again] == [
        records.error_record(0, r) for r in created
    ]
    await loaded.close()
    reopened.close()
