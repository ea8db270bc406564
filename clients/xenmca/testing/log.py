"""Reading dom0's durable log from a test: its rows and its dropped-duplicates counter.

A read-only connection of its own, in a worker thread: it reads what is committed,
whether dom0 is running, stopped or restarted meanwhile. No log file yet reads as empty.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

from xenmca.dom0 import log_queries
from xenmca.dom0.log_schema import LoggedRecord


@dataclass(frozen=True)
class LogContents:
    """Every row of the log in logged order, and the re-deliveries it recognised and dropped."""

    records: list[LoggedRecord]
    duplicates_dropped: int

    @property
    def keys(self) -> list[tuple[int, int]]:
        """(pCPU, record id) of every row, in logged order."""
        return [(r.pcpu, r.record_id) for r in self.records]


def _read(path: Path) -> LogContents:
    if not path.exists():
        return LogContents([], 0)
    with contextlib.closing(log_queries.open_reader(path)) as conn:
        records = list(log_queries.iter_records(conn))
        return LogContents(records, log_queries.duplicates_dropped(conn))


async def read_log(path: Path) -> LogContents:
    """The log at path as committed now (LogUnavailable for a file that is not a dom0 log)."""
    return await asyncio.to_thread(_read, path)
