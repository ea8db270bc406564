"""The checkers: pure functions over a run's RunData, each giving a CheckResult.

`run_checks(data)` evaluates every check the scenario asks for; `overall_valid`
folds them into the run's verdict: True (all pass), False (any fail) or
"unknown" (none fail, some could not be evaluated). Each check names the records
it flags as (pCPU, type, record id); the checks with more than counting to do
live in xenmca.testbed.check (stranded, fairness, isolation, and the naming).

A problem in `RunData.problems` makes the checks that depend on the missing data
"unknown". A problem names what it affects by its prefix ("firmware:", "log:",
"events:", "samples:"); a problem with no known prefix affects every check.
The latency checks (absolute, or relative to the machine's calibrated floor) live
in xenmca.testbed.check.latency.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from xenmca.testbed.check.cleared import cleared_before_logged
from xenmca.testbed.check.duplicates import duplicated
from xenmca.testbed.check.events import of_kind
from xenmca.testbed.check.fairness import FAIRNESS, check_fairness
from xenmca.testbed.check.isolation import ISOLATION, check_isolation
from xenmca.testbed.check.latency import LATENCY_MAX, LATENCY_P99, check_latency
from xenmca.testbed.check.latency import latencies_ms as latencies_ms
from xenmca.testbed.check.latency import latency_stats as latency_stats
from xenmca.testbed.check.latency import percentile as percentile
from xenmca.testbed.check.local_calls import LOCAL_CALLS, check_local_calls
from xenmca.testbed.check.lost import lost_records
from xenmca.testbed.check.result import CheckResult, RecordRef, Status
from xenmca.testbed.check.stranded import STRANDED, check_stranded
from xenmca.testbed.run.data import RunData

Valid = bool | Literal["unknown"]

CONSERVATION = "conservation"
DUPLICATES = "duplicates"
CLEARED_BEFORE_LOGGED = "cleared_before_logged"
LINES_BACK_TO_INTERRUPT = "lines_back_to_interrupt"
TRANSITION_PREFIX = "transition"

_LATENCY = (LATENCY_P99, LATENCY_MAX)
_TRANSITIONS = (TRANSITION_PREFIX, LINES_BACK_TO_INTERRUPT)
# Which checks each kind of missing data makes impossible to evaluate.
PROBLEM_AFFECTS: dict[str, tuple[str, ...]] = {
    "firmware": (CONSERVATION, STRANDED),
    "log": (CONSERVATION, DUPLICATES, CLEARED_BEFORE_LOGGED, *_LATENCY, FAIRNESS),
    "events": (
        DUPLICATES,
        CLEARED_BEFORE_LOGGED,
        *_TRANSITIONS,
        FAIRNESS,
        ISOLATION,
        LOCAL_CALLS,
    ),
    "samples": (),
}


@dataclass(frozen=True)
class Accounting:
    """Where every created record ended up (DESIGN section 3, conservation)."""

    injected: int
    requested: int
    logged: int
    duplicates: int
    redelivered: int
    pending: int
    overflowed: int
    cleared_before_logged: int

    @property
    def lost(self) -> int:
        return self.injected - self.logged - self.pending - self.overflowed

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "lost": self.lost}


# --- what the run shows -------------------------------------------------------


def count_duplicates(data: RunData) -> int:
    """Per (pCPU, record id): log rows beyond the first, or "new" commits beyond the first."""
    return sum(extra for _, extra in duplicated(data))


def count_cleared_before_logged(data: RunData) -> int:
    """Clears reaching a pCPU for a record with no log row, or a row committed after the clear."""
    return len(cleared_before_logged(data))


def account(data: RunData) -> Accounting:
    return Accounting(
        injected=sum(f.created for f in data.firmware),
        requested=data.requested,
        logged=len({(r.pcpu, r.record_id) for r in data.log}),
        duplicates=count_duplicates(data),
        redelivered=data.redelivered,
        pending=sum(f.pending for f in data.firmware),
        overflowed=sum(f.overflowed for f in data.firmware),
        cleared_before_logged=count_cleared_before_logged(data),
    )


def line_modes(events: Iterable[dict[str, Any]]) -> dict[tuple[int, str], str]:
    """Each line's mode at the end, from its transitions (a coordinator restart resets all)."""
    modes: dict[tuple[int, str], str] = {}
    for event in events:
        if event.get("component") != "xen":
            continue
        if event.get("kind") == "coordinator_started":
            modes = {line: "interrupt" for line in modes}
        elif event.get("kind") == "throttle_transition":
            modes[(int(event["pcpu"]), str(event["type"]).upper())] = str(event["new"])
    return modes


# --- the checks -------------------------------------------------------------------


def _bounded(name: str, observed: int, bound: int, detail: str) -> CheckResult:
    return CheckResult(name, "pass" if observed <= bound else "fail", observed, bound, detail)


def check_conservation(data: RunData, acc: Accounting) -> CheckResult:
    """Lost = injected - logged - pending - overflowed, by the counters; named by record id.

    Pending records are stranded's business, not this check's: a run that did not
    drain says so here and fails there.
    """
    lost, bound = acc.lost, data.scenario.checks.max_lost
    named = lost_records(data)
    detail = (
        f"injected {acc.injected} = logged {acc.logged} + pending {acc.pending}"
        f" + overflowed {acc.overflowed} + lost {lost}"
    )
    status: Status = "pass" if 0 <= lost <= bound else "fail"
    if lost < 0:
        detail += " (more logged than any firmware created)"
    if named.unexpected:
        status = "fail"
        detail += f"; {len(named.unexpected)} logged records were never created"
    if named.uncertain:
        detail += f"; ids not known exactly ({'; '.join(named.uncertain)})"
        if lost > 0:
            detail += f"; {len(named.lost)} of the {lost} lost records named"
    elif len(named.lost) != max(lost, 0):
        detail += f"; the ids show {len(named.lost)} lost"
        if len(named.lost) > bound:
            status = "fail"
    if acc.pending and not data.drained:
        detail += f"; not drained: {acc.pending} still pending (see {STRANDED})"
    result = CheckResult(CONSERVATION, status, lost, bound, detail)
    return result.naming([*named.lost, *named.unexpected])


def check_duplicates(data: RunData, acc: Accounting) -> CheckResult:
    detail = (
        f"records logged or committed as new more than once; {acc.redelivered} re-deliveries"
        " were recognised and dropped"
    )
    result = _bounded(DUPLICATES, acc.duplicates, data.scenario.checks.max_duplicates, detail)
    return result.naming(ref for ref, _ in duplicated(data))


def check_cleared_before_logged(data: RunData, acc: Accounting) -> CheckResult:
    result = _bounded(
        CLEARED_BEFORE_LOGGED,
        acc.cleared_before_logged,
        data.scenario.checks.max_cleared_before_logged,
        "CLEARs that reached a pCPU before dom0 committed the record",
    )
    return result.naming(cleared_before_logged(data))


def check_transitions(data: RunData) -> list[CheckResult]:
    seen = {
        (int(e["pcpu"]), str(e["type"]).upper(), str(e["new"]))
        for e in of_kind(data.events, "xen", "throttle_transition")
    }
    results = []
    for want in data.scenario.checks.expect_transitions:
        key = (want.pcpu, want.type.upper(), want.mode)
        name = f"{TRANSITION_PREFIX}:pcpu{want.pcpu}:{key[1]}:{want.mode}"
        found = key in seen
        detail = f"pCPU {want.pcpu} {key[1]} line went to {want.mode}"
        detail += "" if found else ": never"
        result = CheckResult(name, "pass" if found else "fail", found, True, detail)
        missing = [] if found else [RecordRef(want.pcpu, key[1], None, f"never {want.mode}")]
        results.append(result.naming(missing))
    return results


def check_back_to_interrupt(data: RunData) -> CheckResult:
    stuck = sorted(line for line, mode in line_modes(data.events).items() if mode != "interrupt")
    names = ", ".join(f"pCPU {p} {t}" for p, t in stuck)
    detail = f"still polling at the end: {names}" if stuck else "every line ended in interrupt mode"
    status: Status = "fail" if stuck else "pass"
    result = CheckResult(LINES_BACK_TO_INTERRUPT, status, len(stuck), 0, detail)
    return result.naming(RecordRef(p, t, None, "still polling") for p, t in stuck)


def _affected(problems: Sequence[str]) -> tuple[set[str], bool]:
    """The check names (or name prefixes) the problems make unknown; True when all are."""
    names: set[str] = set()
    for problem in problems:
        prefix = problem.split(":", 1)[0].strip().lower()
        if prefix not in PROBLEM_AFFECTS:
            return names, True
        names.update(PROBLEM_AFFECTS[prefix])
    return names, False


def _mark_unknown(checks: list[CheckResult], problems: Sequence[str]) -> list[CheckResult]:
    if not problems:
        return checks
    names, everything = _affected(problems)
    reason = "; ".join(problems)
    marked = []
    for check in checks:
        if everything or check.name.split(":", 1)[0] in names:
            detail = f"{check.detail} [would be {check.status}; unknown because: {reason}]"
            check = dataclasses.replace(check, status="unknown", detail=detail)
        marked.append(check)
    return marked


def run_checks(data: RunData, acc: Accounting | None = None) -> list[CheckResult]:
    acc = acc or account(data)
    bounds = data.scenario.checks
    checks = [
        check_conservation(data, acc),
        check_stranded(data),
        check_duplicates(data, acc),
        check_cleared_before_logged(data, acc),
        *check_latency(data),
        *check_transitions(data),
    ]
    if bounds.all_lines_back_to_interrupt:
        checks.append(check_back_to_interrupt(data))
    if bounds.fairness:
        checks.append(check_fairness(data))
    if bounds.isolation:
        checks.append(check_isolation(data))
    if bounds.local_calls:
        checks.append(check_local_calls(data))
    return _mark_unknown(checks, data.problems)


def overall_valid(checks: Iterable[CheckResult]) -> Valid:
    statuses = {c.status for c in checks}
    if "fail" in statuses:
        return False
    if "unknown" in statuses:
        return "unknown"
    return True
