"""Conservation by record id: the records created and neither logged nor pending (lost), and
the records logged that no pCPU created (unexpected).

Stored ids come from the pCPUs' records_created events, pending ids from the
firmware after the drain (oldest first, possibly cut short). Where the ids cannot
be known exactly (events missing for a line, pending ids cut short, ids reused
after a pCPU lost its store), what can be named is named and the rest is said.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xenmca.testbed.check.created import CreatedIndex, index_created
from xenmca.testbed.check.events import Line
from xenmca.testbed.check.result import RecordRef
from xenmca.testbed.run.data import FirmwareCounts, RunData
from xenmca.vocab import type_name

NEVER_LOGGED = "created, never logged, not pending"
NEVER_CREATED = "logged, never created"


@dataclass
class LostRecords:
    lost: list[RecordRef] = field(default_factory=list)
    unexpected: list[RecordRef] = field(default_factory=list)
    # Why some ids cannot be known exactly, one phrase per line or cause.
    uncertain: list[str] = field(default_factory=list)


def _line_name(line: Line) -> str:
    return f"pCPU {line[0]} {line[1]}"


def _lost_on_line(
    line: Line,
    ids: list[int],
    counts: FirmwareCounts,
    logged: set[tuple[int, int]],
    found: LostRecords,
) -> None:
    pcpu, type_ = line
    listed = set(counts.pending_ids)
    unlogged = [i for i in ids if (pcpu, i) not in logged and i not in listed]
    # Pending ids are oldest first: the ones not read are all newer than the last one read.
    unread = max(0, counts.pending - len(counts.pending_ids))
    if unread == 0:
        found.lost += [RecordRef(pcpu, type_, i, NEVER_LOGGED) for i in unlogged]
        return
    horizon = max(counts.pending_ids, default=0)
    found.lost += [RecordRef(pcpu, type_, i, NEVER_LOGGED) for i in unlogged if i < horizon]
    beyond = [i for i in unlogged if i > horizon]
    if len(beyond) > unread:
        found.uncertain.append(
            f"{_line_name(line)}: {len(beyond) - unread} of the {len(beyond)} unlogged records"
            f" after #{horizon} are lost, the rest pending ({unread} pending ids not read)"
        )


def lost_records(data: RunData, index: CreatedIndex | None = None) -> LostRecords:
    index = index or index_created(data.events)
    found = LostRecords()
    logged = {(r.pcpu, r.record_id) for r in data.log}
    firmware = {(f.pcpu, type_name(f.type)): f for f in data.firmware}
    logged_lines = {(r.pcpu, type_name(r.type)) for r in data.log}
    exact: set[Line] = set()
    for line in sorted(set(index.stored) | set(firmware) | logged_lines):
        ids = index.stored.get(line, [])
        counts = firmware.get(line)
        if counts is None:
            found.uncertain.append(f"{_line_name(line)}: no firmware counts")
            continue
        stored = counts.created - counts.overflowed
        if len(ids) != stored:
            found.uncertain.append(
                f"{_line_name(line)}: events show {len(ids)} of {stored} stored records"
            )
        else:
            exact.add(line)
        _lost_on_line(line, ids, counts, logged, found)
    if index.repeated:
        pcpus = sorted({pcpu for pcpu, _ in index.repeated})
        found.uncertain.append(f"ids created more than once on pCPUs {pcpus} (store lost?)")
    for row in sorted(data.log, key=lambda r: (r.pcpu, r.record_id)):
        line = (row.pcpu, type_name(row.type))
        if line in exact and (row.pcpu, row.record_id) not in index.created_at:
            found.unexpected.append(RecordRef(row.pcpu, line[1], row.record_id, NEVER_CREATED))
    return found
