"""The records a latency bound flags: those slower than the bound, slowest first."""

from __future__ import annotations

from collections.abc import Sequence

from xenmca.testbed.check.result import RecordRef
from xenmca.testbed.run.data import LoggedRecord
from xenmca.vocab import type_name


def slower_than(log: Sequence[LoggedRecord], bound_ms: float) -> list[RecordRef]:
    timed = [
        ((r.logged_monotonic_ns - r.created_monotonic_ns) / 1e6, r)
        for r in log
        if r.created_monotonic_ns > 0
    ]
    slow = sorted((t for t in timed if t[0] > bound_ms), key=lambda t: -t[0])
    return [RecordRef(r.pcpu, type_name(r.type), r.record_id, f"{ms:.1f} ms") for ms, r in slow]
