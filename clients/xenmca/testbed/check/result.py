"""What a check answers: its status, its measure against its bound, and the records it names.

Like Jepsen's total-queue checker, which names the lost, duplicated and unexpected
elements, every check names what it flags: a record as (pCPU, type, record id),
or a line (pCPU, type) itself when the fault is the line's (record id None).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "unknown"]

# A check keeps at most this many named records; records_total says how many it flagged.
MAX_NAMED = 50


@dataclass(frozen=True)
class RecordRef:
    """A record named as (pCPU, type, record id); record_id None names the line itself.

    `note` says why it is named ("overtaken 9 times, bound 1"); it is left out of
    equality and ordering, so a record is the same record whatever is said of it.
    """

    pcpu: int
    type: str  # "CMC", "CPE", "MCA", "INIT"
    record_id: int | None
    note: str = field(default="", compare=False)

    def as_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = {"pcpu": self.pcpu, "type": self.type, "record_id": self.record_id}
        if self.note:
            plain["note"] = self.note
        return plain

    def label(self) -> str:
        """ "pCPU 3 CMC #17 (note)", or "pCPU 3 CMC line (note)"."""
        what = "line" if self.record_id is None else f"#{self.record_id}"
        note = f" ({self.note})" if self.note else ""
        return f"pCPU {self.pcpu} {self.type} {what}{note}"


def label_of(plain: dict[str, Any]) -> str:
    """The label of a RecordRef read back from results.json."""
    record_id = plain.get("record_id")
    return RecordRef(
        int(plain.get("pcpu", -1)),
        str(plain.get("type", "?")),
        None if record_id is None else int(record_id),
        str(plain.get("note", "")),
    ).label()


def ref_order(ref: RecordRef) -> tuple[int, str, int]:
    """pCPU, type, then id; a line comes before its records."""
    return (ref.pcpu, ref.type, -1 if ref.record_id is None else ref.record_id)


def keep_named(
    refs: Iterable[RecordRef], *, ordered: bool = False
) -> tuple[tuple[RecordRef, ...], int]:
    """The first MAX_NAMED distinct refs (sorted, unless `ordered` says they are worst first)."""
    distinct = list(dict.fromkeys(refs))
    if not ordered:
        distinct.sort(key=ref_order)
    return tuple(distinct[:MAX_NAMED]), len(distinct)


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    observed: Any
    bound: Any
    detail: str = ""
    # What the check flags, at most MAX_NAMED of them; records_total counts them all.
    records: tuple[RecordRef, ...] = ()
    records_total: int = 0

    def naming(self, refs: Iterable[RecordRef], *, ordered: bool = False) -> CheckResult:
        """This result with `refs` as its named records (see keep_named)."""
        kept, total = keep_named(refs, ordered=ordered)
        return dataclasses.replace(self, records=kept, records_total=total)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "observed": self.observed,
            "bound": self.bound,
            "detail": self.detail,
            "records": [r.as_dict() for r in self.records],
            "records_total": self.records_total,
        }
