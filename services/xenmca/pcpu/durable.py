"""The durable firmware store: one SQLite database per host process, shared by its pCPUs.

``STATE_DIR/firmware.sqlite`` holds every pCPU the process hosts, keyed by a
``pcpu`` column, so a host serving pCPUs 0-63 opens one file and a restart with
the same state dir restores each pCPU's pending records, id counter and
counters. WAL with ``synchronous=FULL``: a change is on disk when its commit
returns, so it survives kill -9 (and power loss, as far as the disk keeps fsync).

Each store change (a whole InjectError batch, or one clear) is one transaction.
Commits run on one worker thread per database so the event loop keeps serving
reads, which never touch the disk (the stores keep their own in-memory indexes).
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from xenmca.pcpu.model import LoadedState, StoredRecord, TypeCounters
from xenmca.pcpu.store import StoreChange
from xenmca.vocab import RECORD_TYPES

DATABASE_NAME = "firmware.sqlite"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_info (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pcpu_ids (
    pcpu INTEGER PRIMARY KEY,
    next_record_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS type_counters (
    pcpu INTEGER NOT NULL,
    type INTEGER NOT NULL,
    created INTEGER NOT NULL,
    cleared INTEGER NOT NULL,
    overflowed INTEGER NOT NULL,
    interrupts_raised INTEGER NOT NULL,
    PRIMARY KEY (pcpu, type)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending_records (
    pcpu INTEGER NOT NULL,
    record_id INTEGER NOT NULL,
    type INTEGER NOT NULL,
    severity INTEGER NOT NULL,
    overflow INTEGER NOT NULL,
    created_wall_ns INTEGER NOT NULL,
    created_monotonic_ns INTEGER NOT NULL,
    raw BLOB NOT NULL,
    PRIMARY KEY (pcpu, record_id)
) WITHOUT ROWID;
"""


class StateDirError(RuntimeError):
    """A state dir whose database cannot be opened or is not ours; the message says which."""


class FirmwareDatabase:
    """The SQLite file of one host process; ``backend(pcpu)`` gives each pCPU's view."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / DATABASE_NAME
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(SCHEMA)
            self._check_schema()
        except (sqlite3.Error, OSError) as exc:
            raise StateDirError(f"{self.path}: cannot open firmware database: {exc}") from exc
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="firmware-db")

    def _check_schema(self) -> None:
        row = self._conn.execute("SELECT version FROM schema_info").fetchone()
        if row is None:
            self._conn.execute("INSERT INTO schema_info (version) VALUES (?)", (SCHEMA_VERSION,))
        elif row[0] != SCHEMA_VERSION:
            raise StateDirError(
                f"{self.path}: schema version {row[0]}, this program uses {SCHEMA_VERSION}"
            )

    def backend(self, pcpu: int) -> PcpuBackend:
        return PcpuBackend(self, pcpu)

    def load(self, pcpu: int) -> LoadedState:
        """One pCPU's committed state (read on the worker thread, after queued commits)."""
        return self._executor.submit(self._load, pcpu).result()

    def _load(self, pcpu: int) -> LoadedState:
        state = LoadedState()
        row = self._conn.execute(
            "SELECT next_record_id FROM pcpu_ids WHERE pcpu = ?", (pcpu,)
        ).fetchone()
        if row is not None:
            state.next_record_id = int(row[0])
        for record_type, *values in self._conn.execute(
            "SELECT type, created, cleared, overflowed, interrupts_raised"
            " FROM type_counters WHERE pcpu = ?",
            (pcpu,),
        ):
            if record_type in RECORD_TYPES:
                state.counters[record_type] = TypeCounters(*values)
        for record_id, record_type, severity, overflow, wall_ns, mono_ns, raw in self._conn.execute(
            "SELECT record_id, type, severity, overflow, created_wall_ns, created_monotonic_ns, raw"
            " FROM pending_records WHERE pcpu = ? ORDER BY record_id",
            (pcpu,),
        ):
            state.pending[record_type].append(
                StoredRecord(
                    record_id, record_type, severity, wall_ns, mono_ns, bytes(raw), bool(overflow)
                )
            )
        return state

    def commit_now(self, change: StoreChange) -> None:
        """Commit one change in one transaction (on the calling thread)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if change.inserted:
                conn.executemany(
                    "INSERT INTO pending_records (pcpu, record_id, type, severity, overflow,"
                    " created_wall_ns, created_monotonic_ns, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            change.pcpu,
                            r.record_id,
                            r.record_type,
                            r.severity,
                            int(r.overflow),
                            r.created_wall_ns,
                            r.created_monotonic_ns,
                            r.raw,
                        )
                        for r in change.inserted
                    ],
                )
            if change.deleted:
                conn.executemany(
                    "DELETE FROM pending_records WHERE pcpu = ? AND record_id = ?",
                    [(change.pcpu, record_id) for record_id in change.deleted],
                )
            if change.flagged:
                conn.executemany(
                    "UPDATE pending_records SET overflow = 1 WHERE pcpu = ? AND record_id = ?",
                    [(change.pcpu, record_id) for record_id in change.flagged],
                )
            counters = change.counters
            conn.execute(
                "INSERT OR REPLACE INTO type_counters (pcpu, type, created, cleared, overflowed,"
                " interrupts_raised) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    change.pcpu,
                    change.record_type,
                    counters.created,
                    counters.cleared,
                    counters.overflowed,
                    counters.interrupts_raised,
                ),
            )
            conn.execute(
                "INSERT OR REPLACE INTO pcpu_ids (pcpu, next_record_id) VALUES (?, ?)",
                (change.pcpu, change.next_record_id),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def commit(self, change: StoreChange) -> None:
        """Commit one change on the database's worker thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.commit_now, change)

    def close(self) -> None:
        """Finish queued commits, then close the file (idempotent)."""
        self._executor.shutdown(wait=True)
        self._conn.close()


class PcpuBackend:
    """One pCPU's rows of a FirmwareDatabase (a RecordStore backend)."""

    def __init__(self, database: FirmwareDatabase, pcpu: int) -> None:
        self.database = database
        self.pcpu = pcpu

    def load(self) -> LoadedState:
        return self.database.load(self.pcpu)

    async def commit(self, change: StoreChange) -> None:
        await self.database.commit(change)
