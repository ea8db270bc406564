"""dom0's durable log: one SQLite transaction per record, fsync'd before commit() returns.

SQLite runs on the event loop's own thread, synchronously: a commit is one
BEGIN IMMEDIATE ... COMMIT with no await inside, so it is never interleaved with
another and never cut short by a cancelled task (a record is fully logged or
not at all). It used to run on a dedicated worker thread; the hand-off (a
thread wake-up, then the loop's) cost about 150 µs per record on dom0's serial
path, about a third of the commit, measured with the bench's per-hop trace
(issue 18). Nothing in dom0 has other work to do while its drain waits for the
fsync, and the log's readers (tests, the pytest plugin) run small queries.
A record already in the log (same pCPU and record id, delivered again after a
lost CLEAR) is not stored twice; it increments the persisted
duplicates_dropped counter in the same transaction instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from xenmca.dom0 import log_queries
from xenmca.dom0.log_schema import (
    DUPLICATES_DROPPED,
    INSERT_RECORD,
    LoggedRecord,
    configure,
    record_row,
)
from xenmca.record.v1 import record_pb2
from xenmca.rpc.clock import Clock, MonotonicClock

T = TypeVar("T")

_NO_PAGE_LIMIT = 4294967294
"""The largest max_page_count SQLite accepts: no cap in practice (its default since 3.45)."""


class LogOpenError(Exception):
    """The log cannot be opened or created at the given path; the message is one line."""


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; commit() spells out its own.
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        configure(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _commit(
    conn: sqlite3.Connection, record: record_pb2.ErrorRecord, wall_ns: int, mono_ns: int
) -> bool:
    """One transaction: insert the record, or count it as a duplicate. True when new."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = record_row(record, wall_ns, mono_ns)
        inserted = conn.execute(INSERT_RECORD, row).rowcount == 1
        if not inserted:
            conn.execute(
                "UPDATE counters SET value = value + 1 WHERE name = ?", (DUPLICATES_DROPPED,)
            )
        conn.execute("COMMIT")  # synchronous=FULL: the WAL is fsync'd before this returns
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return inserted


class LogStore:
    """The log file and its connection. Use ``await LogStore.open(path)``."""

    def __init__(self, path: Path, clock: Clock | None = None) -> None:
        self.path = path
        # Stamps each record's logged time (wall and monotonic).
        self.clock: Clock = clock or MonotonicClock()
        self._conn: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path | str, clock: Clock | None = None) -> LogStore:
        """Open (creating if needed) the log at path; LogOpenError with one line if impossible."""
        store = cls(Path(path), clock)
        try:
            store._conn = _connect(store.path)
        except (sqlite3.Error, OSError) as exc:
            raise LogOpenError(f"cannot open dom0 log {store.path}: {exc}") from exc
        return store

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        # Synchronous on purpose (see the module's docstring): no await between BEGIN
        # and COMMIT, so on virtual time no tick can land inside a commit either.
        if self._conn is None:
            raise RuntimeError("the log is closed")
        return fn(self._conn, *args)

    async def commit(self, record: record_pb2.ErrorRecord) -> bool:
        """Store record durably. True if new; False if it was already logged (a duplicate).

        The commit has no await inside, so a cancelled caller cannot cut it short:
        a record is either fully logged or not at all.
        """
        wall_ns = round(self.clock.wall() * 1e9)
        return await self._run(_commit, record, wall_ns, self.clock.now_ns())

    async def counts(self) -> log_queries.LogCounts:
        return await self._run(log_queries.counts)

    async def list_records(
        self, *, pcpu: int | None = None, record_type: str | None = None, limit: int | None = None
    ) -> list[LoggedRecord]:
        def query(conn: sqlite3.Connection) -> list[LoggedRecord]:
            return log_queries.list_records(conn, pcpu=pcpu, record_type=record_type, limit=limit)

        return await self._run(query)

    async def get(self, pcpu: int, record_id: int) -> LoggedRecord | None:
        return await self._run(log_queries.get_record, pcpu, record_id)

    async def get_by_log_id(self, log_id: int) -> LoggedRecord | None:
        return await self._run(log_queries.get_by_log_id, log_id)

    async def stats(self) -> log_queries.LogStats:
        return await self._run(log_queries.stats)

    async def duplicates_dropped(self) -> int:
        return await self._run(log_queries.duplicates_dropped)

    async def set_page_limit(self, pages: int | None) -> int:
        """Cap the log at pages database pages (None: lift the cap); the cap now in force.

        A commit that needs more pages fails as on a full disk (SQLITE_FULL,
        "database or disk is full"), through SQLite's own error path: a full
        disk for tests and drills, without root or a small filesystem. SQLite
        never sets the cap below the pages in use; this connection only.
        """

        def limit(conn: sqlite3.Connection) -> int:
            cap = _NO_PAGE_LIMIT if pages is None else int(pages)
            conn.execute(f"PRAGMA max_page_count = {cap}")
            return int(conn.execute("PRAGMA max_page_count").fetchone()[0])

        return await self._run(limit)

    async def page_count(self) -> int:
        """Database pages in use (the WAL's included)."""
        return await self._run(lambda conn: int(conn.execute("PRAGMA page_count").fetchone()[0]))

    async def pragmas(self) -> dict[str, object]:
        """journal_mode and synchronous as this connection sees them (synchronous 2 = FULL)."""

        def read(conn: sqlite3.Connection) -> dict[str, object]:
            return {
                "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
                "synchronous": conn.execute("PRAGMA synchronous").fetchone()[0],
            }

        return await self._run(read)

    async def close(self) -> None:
        """Close the connection (checkpointing the WAL)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    async def __aenter__(self) -> LogStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
