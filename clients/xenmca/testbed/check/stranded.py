"""Stranded records: still pending in firmware after the drain (DESIGN section 4.1).

A run whose drain leaves records pending is not valid unless the scenario says how
many it expects to stay (checks.max_stranded). Each pending line is diagnosed from
the coordinator's state after the drain (final_xen).
"""

from __future__ import annotations

from xenmca.testbed.check.final_xen import diagnose
from xenmca.testbed.check.result import CheckResult, RecordRef, Status
from xenmca.testbed.run.data import RunData
from xenmca.vocab import type_name

STRANDED = "stranded"


def check_stranded(data: RunData) -> CheckResult:
    bound = data.scenario.checks.max_stranded
    pending = sorted(
        (f for f in data.firmware if f.pending > 0), key=lambda f: (f.pcpu, type_name(f.type))
    )
    total = sum(f.pending for f in pending)
    if not pending:
        detail = "nothing pending in firmware after the drain"
        return CheckResult(STRANDED, "pass", 0, bound, detail)
    refs: list[RecordRef] = []
    lines = []
    for counts in pending:
        type_ = type_name(counts.type)
        why = diagnose(data.final_xen, counts.pcpu, type_)
        lines.append(f"pCPU {counts.pcpu} {type_}: {counts.pending} pending, {why}")
        refs += [RecordRef(counts.pcpu, type_, i, why) for i in counts.pending_ids]
        unread = counts.pending - len(counts.pending_ids)
        if unread > 0:
            refs.append(RecordRef(counts.pcpu, type_, None, f"{unread} more pending, ids not read"))
    detail = f"{total} records still pending in firmware after the drain"
    if not data.drained:
        detail += " (the drain did not finish)"
    if bound:
        detail += f"; the scenario expects up to {bound}"
    detail += "; " + "; ".join(lines)
    status: Status = "pass" if total <= bound else "fail"
    return CheckResult(STRANDED, status, total, bound, detail).naming(refs)
