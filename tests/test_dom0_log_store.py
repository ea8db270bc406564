"""dom0's durable log (LogStore) and its pacing helper (CPE poll interval)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from xenmca.dom0 import log_queries
from xenmca.dom0.log_store import LogOpenError, LogStore
from xenmca.dom0.pacing import PollSettings, next_poll_interval
from xenmca.record.v1 import record_pb2

CMC = record_pb2.RECORD_TYPE_CMC
CPE = record_pb2.RECORD_TYPE_CPE


def make_record(
    pcpu: int, record_id: int, record_type: int = CMC, *, created_ago_ms: float = 5.0
) -> record_pb2.ErrorRecord:
    record = record_pb2.ErrorRecord(
        pcpu=pcpu,
        record_id=record_id,
        type=record_type,  # type: ignore[arg-type]
        severity=record_pb2.SEVERITY_CORRECTED,
        raw=bytes([pcpu, record_id % 256]) * 20,
        created_monotonic_ns=time.monotonic_ns() - int(created_ago_ms * 1e6),
    )
    record.created_at.FromNanoseconds(1_700_000_000_123_456_789)
    if record_type == CPE:
        record.sections.add(
            error_recovery_info=0x81,
            platform_memory=record_pb2.MemorySection(physical_addr=0x1000 * record_id, node=1),
        )
    else:
        record.sections.add(
            error_recovery_info=0x81,
            processor=record_pb2.ProcessorSection(proc_cr_lid=pcpu << 24),
        )
    return record


@pytest.fixture
async def store(tmp_path: Path):
    opened = await LogStore.open(tmp_path / "dom0.sqlite")
    yield opened
    await opened.close()


async def test_commit_stores_new_record_and_reports_new(store: LogStore) -> None:
    assert await store.commit(make_record(0, 1)) is True
    got = await store.get(0, 1)
    assert got is not None
    assert (got.pcpu, got.record_id, got.type, got.severity) == (0, 1, "CMC", "corrected")
    assert got.raw == make_record(0, 1).raw
    assert got.section_kinds == ["processor"]
    assert got.created_at == "2023-11-14T22:13:20.123457+00:00"
    assert got.latency_ms is not None and got.latency_ms >= 5.0
    assert got.logged_monotonic_ns > got.created_monotonic_ns


async def test_same_pcpu_and_record_id_is_stored_once_and_counted(store: LogStore) -> None:
    assert await store.commit(make_record(0, 7)) is True
    assert await store.commit(make_record(0, 7)) is False
    assert await store.commit(make_record(0, 7)) is False
    # The key is the pair: the same id on another pCPU is another record.
    assert await store.commit(make_record(1, 7)) is True
    stats = await store.stats()
    assert stats.records == 2
    assert stats.duplicates_dropped == 2
    assert await store.duplicates_dropped() == 2


async def test_duplicates_counter_is_persisted(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    async with await LogStore.open(path) as first:
        await first.commit(make_record(2, 1))
        await first.commit(make_record(2, 1))
    async with await LogStore.open(path) as second:
        assert await second.commit(make_record(2, 1)) is False
        assert await second.duplicates_dropped() == 2
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 1


async def test_unique_key_is_enforced_by_the_schema(store: LogStore) -> None:
    await store.commit(make_record(3, 9))
    with sqlite3.connect(store.path) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO records (pcpu, record_id, type, severity, created_wall_ns, "
            "created_monotonic_ns, logged_at, logged_wall_ns, logged_monotonic_ns, "
            "overflow, sections_json, raw) VALUES (3, 9, 'CMC', 'corrected', 0, 0, '', 0, "
            "0, 0, '[]', x'')"
        )


async def test_wal_and_synchronous_full_are_set(store: LogStore) -> None:
    pragmas = await store.pragmas()
    assert str(pragmas["journal_mode"]).lower() == "wal"
    assert pragmas["synchronous"] == 2  # FULL
    with sqlite3.connect(store.path) as conn:  # WAL is persistent in the file
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_commit_is_visible_to_another_connection_when_it_returns(store: LogStore) -> None:
    await store.commit(make_record(4, 1))
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT pcpu, record_id FROM records").fetchall() == [(4, 1)]


async def test_a_commit_runs_whole_on_the_event_loops_thread(store: LogStore, monkeypatch) -> None:
    """No thread hand-off, and no await between BEGIN and COMMIT: another task cannot
    run in the middle of a commit (the log store's docstring says why)."""
    seen: list[tuple[str, bool]] = []
    ticks: list[int] = []
    from xenmca.dom0 import log_store

    original = log_store._commit

    def spy(conn, record, *stamps):
        asyncio.get_running_loop().call_soon(ticks.append, record.record_id)
        result = original(conn, record, *stamps)
        seen.append((threading.current_thread().name, record.record_id in ticks))
        return result

    monkeypatch.setattr(log_store, "_commit", spy)
    for i in range(5):
        await store.commit(make_record(0, i))
    assert seen == [(threading.current_thread().name, False)] * 5


async def test_u64_record_ids_round_trip(store: LogStore) -> None:
    big = (1 << 64) - 1
    assert await store.commit(make_record(0, big)) is True
    assert await store.commit(make_record(0, big)) is False
    got = await store.get(0, big)
    assert got is not None and got.record_id == big


async def test_queries_counts_filters_and_ids(store: LogStore) -> None:
    for rid in range(1, 4):
        await store.commit(make_record(0, rid, CMC))
    await store.commit(make_record(1, 1, CPE))
    await store.commit(make_record(1, 2, CMC))
    counts = await store.counts()
    assert counts.total == 5
    assert counts.by_pcpu == {0: 3, 1: 2}
    assert counts.by_type == {"CMC": 4, "CPE": 1}
    assert counts.by_severity == {"corrected": 5}
    assert counts.by_pcpu_type[(1, "CPE")] == 1
    listed = await store.list_records(pcpu=1)
    assert [(r.pcpu, r.record_id) for r in listed] == [(1, 1), (1, 2)]
    listed = await store.list_records(record_type="cmc", limit=2)
    assert [(r.pcpu, r.record_id) for r in listed] == [(0, 3), (1, 2)]
    first = await store.get_by_log_id(1)
    assert first is not None and first.key == "0:1"
    assert await store.get(9, 9) is None
    cpe = await store.get(1, 1)
    assert cpe is not None and cpe.section_kinds == ["platform_memory"]
    assert cpe.sections[0]["platform_memory"]["node"] == 1


async def test_stats_latency_from_monotonic_stamps(store: LogStore) -> None:
    for rid, ago in enumerate((10.0, 20.0, 30.0), start=1):
        await store.commit(make_record(0, rid, created_ago_ms=ago))
    no_stamp = make_record(0, 99)
    no_stamp.created_monotonic_ns = 0
    await store.commit(no_stamp)
    stats = await store.stats()
    assert stats.records == 4
    assert stats.latency.count == 3
    assert stats.latency.p50_ms is not None and 20.0 <= stats.latency.p50_ms < 30.0
    assert stats.latency.max_ms is not None and stats.latency.max_ms >= 30.0
    assert stats.latency.p99_ms == stats.latency.max_ms


async def test_open_in_missing_directory_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(LogOpenError) as caught:
        await LogStore.open(tmp_path / "no" / "such" / "dir" / "log.sqlite")
    assert "\n" not in str(caught.value)
    assert "cannot open dom0 log" in str(caught.value)


def test_reader_refuses_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(log_queries.LogUnavailable, match="no dom0 log"):
        log_queries.open_reader(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE other (x)")
    with pytest.raises(log_queries.LogUnavailable, match="not a dom0 log"):
        log_queries.open_reader(foreign)


def test_poll_interval_halves_and_doubles_within_bounds() -> None:
    settings = PollSettings(min_interval=2.0, max_interval=15.0)
    assert next_poll_interval(2.0, 0, settings) == 4.0
    assert next_poll_interval(8.0, 0, settings) == 15.0
    assert next_poll_interval(15.0, 0, settings) == 15.0
    assert next_poll_interval(15.0, 3, settings) == 7.5
    assert next_poll_interval(3.0, 1, settings) == 2.0
    assert PollSettings() == PollSettings(120.0, 900.0)
    with pytest.raises(ValueError):
        PollSettings(min_interval=5.0, max_interval=1.0)


async def test_records_are_stamped_by_the_store_clock(tmp_path) -> None:
    from xenmca.dom0.log_queries import iter_records, open_reader
    from xenmca.rpc.clock import FakeClock

    clock = FakeClock(start=50.0, wall_start=1_800_000_000.0)
    store = await LogStore.open(tmp_path / "log.sqlite", clock)
    try:
        await clock.advance(2.5)
        assert await store.commit(make_record(0, 1)) is True
    finally:
        await store.close()
    reader = open_reader(tmp_path / "log.sqlite")
    try:
        (row,) = list(iter_records(reader))
    finally:
        reader.close()
    assert row.logged_monotonic_ns == 52_500_000_000
    assert row.logged_wall_ns == 1_800_000_002_500_000_000
