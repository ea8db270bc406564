"""Records delivered to dom0's log more than once: log rows beyond the first, or commits
reported as new beyond the first (a recognised re-delivery is reported as a duplicate and
is fine)."""

from __future__ import annotations

from collections import Counter

from xenmca.testbed.check.events import of_kind
from xenmca.testbed.check.result import RecordRef
from xenmca.testbed.run.data import RunData
from xenmca.vocab import type_name


def duplicated(data: RunData) -> list[tuple[RecordRef, int]]:
    """Each duplicated record with its number of extra deliveries, sorted by record."""
    rows = Counter((r.pcpu, r.record_id) for r in data.log)
    types = {(r.pcpu, r.record_id): type_name(r.type) for r in data.log}
    new_commits: Counter[tuple[int, int]] = Counter()
    committed: set[tuple[int, int]] = set()
    for event in of_kind(data.events, "dom0", "record_committed"):
        key = (int(event["pcpu"]), int(event["record_id"]))
        types.setdefault(key, type_name(event.get("type", "?")))
        if not event.get("duplicate") and key in committed:
            new_commits[key] += 1
        committed.add(key)
    found = []
    for key in sorted(set(rows) | set(new_commits)):
        extra = max(rows[key] - 1, new_commits[key], 0)
        if extra:
            parts = []
            if rows[key] > 1:
                parts.append(f"{rows[key]} log rows")
            if new_commits[key]:
                parts.append(f"committed as new {new_commits[key] + 1} times")
            found.append((RecordRef(key[0], types[key], key[1], ", ".join(parts)), extra))
    return found
