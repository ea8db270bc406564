"""A full log for dom0 tests: ``fill`` caps the database at its pages and uses them up
(commits then fail with SQLITE_FULL, FULL), ``free`` lifts the cap; ``delays`` is the
commit backoff's schedule without jitter.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator

from dom0_logger_helpers import CPE

from xenmca.dom0.log_health import DEFAULT_COMMIT_BACKOFF
from xenmca.dom0.log_store import LogStore
from xenmca.record.v1 import record_pb2
from xenmca.rpc.retry import BackoffPolicy

FULL = "database or disk is full"
FILLER_PCPU = 99


def delays(policy: BackoffPolicy = DEFAULT_COMMIT_BACKOFF) -> Iterator[float]:
    """The backoff's delays without jitter: initial * multiplier**n, capped."""
    for n in itertools.count():
        yield min(policy.maximum, policy.initial * policy.multiplier**n)


async def fill(store: LogStore) -> None:
    """Cap the log at the pages it has and fill them: the next record finds no room."""
    await store.set_page_limit(await store.page_count())
    for record_id in itertools.count(1):
        filler = record_pb2.ErrorRecord(pcpu=FILLER_PCPU, record_id=record_id, type=CPE)
        try:
            await store.commit(filler)
        except sqlite3.OperationalError as exc:
            assert str(exc) == FULL
            return


async def free(store: LogStore) -> None:
    await store.set_page_limit(None)
