"""CLEARs that reached a pCPU before dom0 had the record: no log row for it, or its row
committed after the clear (from the pCPUs' record_cleared events)."""

from __future__ import annotations

from xenmca.testbed.check.events import of_kind, t_ns
from xenmca.testbed.check.result import RecordRef
from xenmca.testbed.run.data import RunData
from xenmca.vocab import type_name


def cleared_before_logged(data: RunData) -> list[RecordRef]:
    """One ref per offending clear, in the order of the clears."""
    logged_at: dict[tuple[int, int], int] = {}
    for row in data.log:
        key = (row.pcpu, row.record_id)
        logged_at[key] = min(row.logged_monotonic_ns, logged_at.get(key, row.logged_monotonic_ns))
    found = []
    for event in of_kind(data.events, "pcpu", "record_cleared"):
        if event.get("already_cleared"):
            continue
        pcpu, record_id = int(event["pcpu"]), int(event["record_id"])
        when = logged_at.get((pcpu, record_id))
        if when is None:
            note = "cleared, never logged"
        elif when > t_ns(event):
            note = f"cleared {(when - t_ns(event)) / 1e6:.1f} ms before its commit"
        else:
            continue
        found.append(RecordRef(pcpu, type_name(event.get("type", "?")), record_id, note))
    return found
