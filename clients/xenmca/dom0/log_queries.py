"""Reading dom0's log: counts, listings, one record, export rows and stats.

Plain functions over a sqlite3 connection, so the same code serves the running
logger (on its worker thread) and `xenmca log` (on a read-only connection that
never creates or changes the file).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from xenmca.dom0.log_schema import (
    DUPLICATES_DROPPED,
    RECORD_COLUMNS,
    LoggedRecord,
    u64_to_sql,
)


class LogUnavailable(Exception):
    """The log file is missing or is not a dom0 log; the message is one line."""


@dataclass(frozen=True)
class LogCounts:
    """Records per pCPU, per type, per severity, and per (pCPU, type)."""

    total: int = 0
    by_pcpu: dict[int, int] = field(default_factory=dict)
    by_type: dict[str, int] = field(default_factory=dict)
    by_severity: dict[str, int] = field(default_factory=dict)
    by_pcpu_type: dict[tuple[int, str], int] = field(default_factory=dict)
    by_type_severity: dict[tuple[str, str], int] = field(default_factory=dict)
    overflow: int = 0


@dataclass(frozen=True)
class LatencyStats:
    """created -> logged latency over the records that carry a monotonic creation stamp."""

    count: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    mean_ms: float | None


@dataclass(frozen=True)
class LogStats:
    """Totals of the log: records kept, duplicates dropped, and latency."""

    records: int
    duplicates_dropped: int
    latency: LatencyStats


def open_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection to an existing dom0 log; LogUnavailable when there is none."""
    if not path.is_file():
        raise LogUnavailable(f"no dom0 log at {path}")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        raise LogUnavailable(f"{path} is not a readable SQLite file: {exc}") from exc
    if not {"records", "counters"} <= tables:
        conn.close()
        raise LogUnavailable(f"{path} is not a dom0 log (no records table)")
    return conn


def _where(pcpu: int | None, record_type: str | None) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if pcpu is not None:
        clauses.append("pcpu = ?")
        params.append(pcpu)
    if record_type is not None:
        clauses.append("type = ?")
        params.append(record_type.upper())
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def counts(conn: sqlite3.Connection) -> LogCounts:
    by_pcpu_type: dict[tuple[int, str], int] = {}
    by_type_severity: dict[tuple[str, str], int] = {}
    by_pcpu: dict[int, int] = {}
    by_type: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    total = 0
    rows = conn.execute(
        "SELECT pcpu, type, severity, COUNT(*) FROM records GROUP BY pcpu, type, severity "
        "ORDER BY pcpu, type, severity"
    )
    for pcpu, type_, severity, n in rows:
        total += n
        by_pcpu[pcpu] = by_pcpu.get(pcpu, 0) + n
        by_type[type_] = by_type.get(type_, 0) + n
        by_severity[severity] = by_severity.get(severity, 0) + n
        by_pcpu_type[(pcpu, type_)] = by_pcpu_type.get((pcpu, type_), 0) + n
        key = (type_, severity)
        by_type_severity[key] = by_type_severity.get(key, 0) + n
    overflow = conn.execute("SELECT COUNT(*) FROM records WHERE overflow != 0").fetchone()[0]
    return LogCounts(
        total=total,
        by_pcpu=by_pcpu,
        by_type=by_type,
        by_severity=by_severity,
        by_pcpu_type=by_pcpu_type,
        by_type_severity=by_type_severity,
        overflow=overflow,
    )


def list_records(
    conn: sqlite3.Connection,
    *,
    pcpu: int | None = None,
    record_type: str | None = None,
    limit: int | None = None,
) -> list[LoggedRecord]:
    """Records in the order they were logged; with limit, only the most recent `limit`."""
    where, params = _where(pcpu, record_type)
    if limit is None:
        sql = f"SELECT {RECORD_COLUMNS} FROM records{where} ORDER BY id"
    else:
        sql = (
            f"SELECT * FROM (SELECT {RECORD_COLUMNS} FROM records{where} "
            "ORDER BY id DESC LIMIT ?) ORDER BY id"
        )
        params.append(max(0, limit))
    return [LoggedRecord.from_row(row) for row in conn.execute(sql, params)]


def iter_records(conn: sqlite3.Connection) -> Iterator[LoggedRecord]:
    """Every record, in logged order, without holding them all in memory."""
    for row in conn.execute(f"SELECT {RECORD_COLUMNS} FROM records ORDER BY id"):
        yield LoggedRecord.from_row(row)


def get_record(conn: sqlite3.Connection, pcpu: int, record_id: int) -> LoggedRecord | None:
    row = conn.execute(
        f"SELECT {RECORD_COLUMNS} FROM records WHERE pcpu = ? AND record_id = ?",
        (pcpu, u64_to_sql(record_id)),
    ).fetchone()
    return LoggedRecord.from_row(row) if row else None


def get_by_log_id(conn: sqlite3.Connection, log_id: int) -> LoggedRecord | None:
    row = conn.execute(f"SELECT {RECORD_COLUMNS} FROM records WHERE id = ?", (log_id,)).fetchone()
    return LoggedRecord.from_row(row) if row else None


def duplicates_dropped(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM counters WHERE name = ?", (DUPLICATES_DROPPED,))
    found = row.fetchone()
    return int(found[0]) if found else 0


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list."""
    rank = math.ceil(round(fraction * len(sorted_values), 9))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def stats(conn: sqlite3.Connection) -> LogStats:
    records = conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    latencies = sorted(
        (logged - created) / 1e6
        for created, logged in conn.execute(
            "SELECT created_monotonic_ns, logged_monotonic_ns FROM records "
            "WHERE created_monotonic_ns > 0"
        )
    )
    if latencies:
        latency = LatencyStats(
            count=len(latencies),
            p50_ms=_percentile(latencies, 0.50),
            p99_ms=_percentile(latencies, 0.99),
            max_ms=latencies[-1],
            mean_ms=sum(latencies) / len(latencies),
        )
    else:
        latency = LatencyStats(count=0, p50_ms=None, p99_ms=None, max_ms=None, mean_ms=None)
    return LogStats(records=records, duplicates_dropped=duplicates_dropped(conn), latency=latency)
