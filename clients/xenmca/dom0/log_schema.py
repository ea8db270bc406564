"""dom0's durable log on disk: the SQLite schema, its pragmas, and one logged record as a row.

The log is keyed by (pcpu, record_id), the record's identity across the machine,
so a record the coordinator delivers twice (dom0 crashed before its CLEAR) is
stored once. Everything a reader needs is in the file: decoded fields, the
sections as JSON and the raw SAL bytes, which stay the authoritative copy.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from xenmca.dom0.sections_json import message_object
from xenmca.record.v1 import record_pb2
from xenmca.vocab import type_name

SCHEMA_VERSION = 1
DUPLICATES_DROPPED = "duplicates_dropped"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS records (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    pcpu                 INTEGER NOT NULL,
    record_id            INTEGER NOT NULL,
    type                 TEXT    NOT NULL,
    severity             TEXT    NOT NULL,
    created_at           TEXT,
    created_wall_ns      INTEGER NOT NULL,
    created_monotonic_ns INTEGER NOT NULL,
    logged_at            TEXT    NOT NULL,
    logged_wall_ns       INTEGER NOT NULL,
    logged_monotonic_ns  INTEGER NOT NULL,
    overflow             INTEGER NOT NULL,
    sections_json        TEXT    NOT NULL,
    raw                  BLOB    NOT NULL,
    UNIQUE (pcpu, record_id)
);
CREATE INDEX IF NOT EXISTS records_by_type ON records (type, severity);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES ('{DUPLICATES_DROPPED}', 0);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');
"""

RECORD_COLUMNS = (
    "id, pcpu, record_id, type, severity, created_at, created_wall_ns, created_monotonic_ns, "
    "logged_at, logged_wall_ns, logged_monotonic_ns, overflow, sections_json, raw"
)

_U64 = 1 << 64
_I64_MAX = (1 << 63) - 1


def u64_to_sql(value: int) -> int:
    """A u64 record id as SQLite's signed 64-bit INTEGER (two's complement above 2**63-1)."""
    return value - _U64 if value > _I64_MAX else value


def u64_from_sql(value: int) -> int:
    return value + _U64 if value < 0 else value


def severity_name(severity: int) -> str:
    """recoverable, fatal, corrected (SAL's words), or the number when unknown."""
    try:
        return record_pb2.Severity.Name(severity).removeprefix("SEVERITY_").lower()  # type: ignore[arg-type]
    except ValueError:
        return str(severity)


def iso_from_ns(wall_ns: int) -> str:
    return datetime.fromtimestamp(wall_ns / 1e9, tz=UTC).isoformat(timespec="microseconds")


def configure(conn: sqlite3.Connection) -> None:
    """Durability first: WAL, and an fsync of the WAL on every commit (synchronous=FULL)."""
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"cannot switch the log to WAL (journal_mode={mode})")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.executescript(SCHEMA)


def record_row(record: record_pb2.ErrorRecord, logged_wall_ns: int, logged_mono_ns: int) -> dict:
    """The column values that log record (which was received at the logged_* instants)."""
    created_wall_ns = record.created_at.ToNanoseconds() if record.HasField("created_at") else 0
    sections = [message_object(section) for section in record.sections]
    return {
        "pcpu": record.pcpu,
        "record_id": u64_to_sql(record.record_id),
        "type": type_name(record.type),
        "severity": severity_name(record.severity),
        "created_at": iso_from_ns(created_wall_ns) if created_wall_ns else None,
        "created_wall_ns": created_wall_ns,
        "created_monotonic_ns": record.created_monotonic_ns,
        "logged_at": iso_from_ns(logged_wall_ns),
        "logged_wall_ns": logged_wall_ns,
        "logged_monotonic_ns": logged_mono_ns,
        "overflow": int(record.overflow),
        "sections_json": json.dumps(sections, separators=(",", ":")),
        "raw": bytes(record.raw),
    }


INSERT_RECORD = (
    "INSERT OR IGNORE INTO records (pcpu, record_id, type, severity, created_at, "
    "created_wall_ns, created_monotonic_ns, logged_at, logged_wall_ns, logged_monotonic_ns, "
    "overflow, sections_json, raw) VALUES (:pcpu, :record_id, :type, :severity, :created_at, "
    ":created_wall_ns, :created_monotonic_ns, :logged_at, :logged_wall_ns, "
    ":logged_monotonic_ns, :overflow, :sections_json, :raw)"
)


@dataclass(frozen=True)
class LoggedRecord:
    """One row of the log: a record as dom0 stored it."""

    log_id: int
    pcpu: int
    record_id: int
    type: str
    severity: str
    created_at: str | None
    created_wall_ns: int
    created_monotonic_ns: int
    logged_at: str
    logged_wall_ns: int
    logged_monotonic_ns: int
    overflow: bool
    sections: list[dict[str, Any]]
    raw: bytes

    @classmethod
    def from_row(cls, row: tuple) -> LoggedRecord:
        """Build from a SELECT of RECORD_COLUMNS."""
        (log_id, pcpu, record_id, type_, severity, created_at, created_wall_ns, created_mono,
         logged_at, logged_wall_ns, logged_mono, overflow, sections_json, raw) = row  # fmt: skip
        return cls(
            log_id=log_id,
            pcpu=pcpu,
            record_id=u64_from_sql(record_id),
            type=type_,
            severity=severity,
            created_at=created_at,
            created_wall_ns=created_wall_ns,
            created_monotonic_ns=created_mono,
            logged_at=logged_at,
            logged_wall_ns=logged_wall_ns,
            logged_monotonic_ns=logged_mono,
            overflow=bool(overflow),
            sections=json.loads(sections_json),
            raw=bytes(raw),
        )

    @property
    def key(self) -> str:
        """PCPU:RECORD_ID, the name `xenmca log show` takes."""
        return f"{self.pcpu}:{self.record_id}"

    @property
    def section_kinds(self) -> list[str]:
        """The body kind of each section: processor, platform_memory, pci_bus, ..."""
        return [
            next((k for k in section if k != "error_recovery_info"), "empty")
            for section in self.sections
        ]

    @property
    def latency_ms(self) -> float | None:
        """created -> logged on CLOCK_MONOTONIC, when the record carried a monotonic stamp."""
        if self.created_monotonic_ns <= 0:
            return None
        return (self.logged_monotonic_ns - self.created_monotonic_ns) / 1e6

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every column, raw as hex, plus section kinds and latency."""
        return {
            "log_id": self.log_id,
            "pcpu": self.pcpu,
            "record_id": self.record_id,
            "type": self.type,
            "severity": self.severity,
            "created_at": self.created_at,
            "created_monotonic_ns": self.created_monotonic_ns,
            "logged_at": self.logged_at,
            "logged_monotonic_ns": self.logged_monotonic_ns,
            "latency_ms": self.latency_ms,
            "overflow": self.overflow,
            "section_kinds": self.section_kinds,
            "sections": self.sections,
            "raw_hex": self.raw.hex(),
        }
