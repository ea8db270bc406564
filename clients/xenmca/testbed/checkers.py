"""The checkers: pure functions over a run's RunData, each giving a CheckResult.

`run_checks(data)` evaluates every check the scenario asks for; `overall_valid`
folds them into the run's verdict: True (all pass), False (any fail) or
"unknown" (none fail, some could not be evaluated).

A problem in `RunData.problems` makes the checks that depend on the missing data
"unknown". A problem names what it affects by its prefix ("firmware:", "log:",
"events:", "samples:"); a problem with no known prefix affects every check.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from xenmca.testbed.run_data import LoggedRecord, RunData

Status = Literal["pass", "fail", "unknown"]
Valid = bool | Literal["unknown"]

CONSERVATION = "conservation"
DUPLICATES = "duplicates"
CLEARED_BEFORE_LOGGED = "cleared_before_logged"
LATENCY_P99 = "latency_p99"
LATENCY_MAX = "latency_max"
LINES_BACK_TO_INTERRUPT = "lines_back_to_interrupt"
TRANSITION_PREFIX = "transition"

_LATENCY = (LATENCY_P99, LATENCY_MAX)
_TRANSITIONS = (TRANSITION_PREFIX, LINES_BACK_TO_INTERRUPT)
# Which checks each kind of missing data makes impossible to evaluate.
PROBLEM_AFFECTS: dict[str, tuple[str, ...]] = {
    "firmware": (CONSERVATION,),
    "log": (CONSERVATION, DUPLICATES, CLEARED_BEFORE_LOGGED, *_LATENCY),
    "events": (DUPLICATES, CLEARED_BEFORE_LOGGED, *_TRANSITIONS),
    "samples": (),
}


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    observed: Any
    bound: Any
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def of_kind(events: Iterable[dict[str, Any]], component: str, *kinds: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("component") == component and e.get("kind") in kinds]


def count_duplicates(data: RunData) -> int:
    """Per (pCPU, record id): log rows beyond the first, or "new" commits beyond the first."""
    rows = Counter((r.pcpu, r.record_id) for r in data.log)
    new_commits: Counter[tuple[int, int]] = Counter()
    committed: set[tuple[int, int]] = set()
    for event in of_kind(data.events, "dom0", "record_committed"):
        key = (int(event["pcpu"]), int(event["record_id"]))
        if not event.get("duplicate") and key in committed:
            new_commits[key] += 1
        committed.add(key)
    keys = set(rows) | set(new_commits)
    return sum(max(rows[k] - 1, new_commits[k], 0) for k in keys)


def count_cleared_before_logged(data: RunData) -> int:
    """Clears reaching a pCPU for a record with no log row, or a row committed after the clear."""
    logged_at: dict[tuple[int, int], int] = {}
    for row in data.log:
        key = (row.pcpu, row.record_id)
        logged_at[key] = min(row.logged_monotonic_ns, logged_at.get(key, row.logged_monotonic_ns))
    count = 0
    for event in of_kind(data.events, "pcpu", "record_cleared"):
        if event.get("already_cleared"):
            continue
        when = logged_at.get((int(event["pcpu"]), int(event["record_id"])))
        if when is None or when > int(event["t_mono_ns"]):
            count += 1
    return count


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


def latencies_ms(log: Sequence[LoggedRecord]) -> list[float]:
    """Injection to durable log, per logged record that carries its creation time."""
    return [
        (r.logged_monotonic_ns - r.created_monotonic_ns) / 1e6
        for r in log
        if r.created_monotonic_ns > 0
    ]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_stats(log: Sequence[LoggedRecord]) -> dict[str, float | int | None]:
    values = latencies_ms(log)
    return {
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "mean": sum(values) / len(values) if values else None,
        "count": len(values),
    }


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
    lost, bound = acc.lost, data.scenario.checks.max_lost
    detail = (
        f"injected {acc.injected} = logged {acc.logged} + pending {acc.pending}"
        f" + overflowed {acc.overflowed} + lost {lost}"
    )
    if lost < 0:
        return CheckResult(
            CONSERVATION, "fail", lost, bound, detail + " (more logged than any firmware created)"
        )
    if not data.drained and acc.pending > 0:
        detail += f"; not drained: {acc.pending} still pending in firmware"
        return CheckResult(CONSERVATION, "pass" if lost == 0 else "fail", lost, 0, detail)
    return _bounded(CONSERVATION, lost, bound, detail)


def check_latency(data: RunData) -> list[CheckResult]:
    checks = data.scenario.checks
    wanted = [
        (LATENCY_P99, checks.latency_p99_ms, 99.0),
        (LATENCY_MAX, checks.latency_max_ms, 100.0),
    ]
    values = latencies_ms(data.log)
    results = []
    for name, bound, q in wanted:
        if bound is None:
            continue
        if not values:
            status: Status = "unknown" if data.log else "pass"
            why = "no logged record carries its creation time" if data.log else "nothing logged"
            results.append(CheckResult(name, status, None, bound, why))
            continue
        observed = percentile(values, q)
        assert observed is not None
        detail = f"ms from injection to durable log over {len(values)} records"
        status = "pass" if observed <= bound else "fail"
        results.append(CheckResult(name, status, round(observed, 3), bound, detail))
    return results


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
        results.append(CheckResult(name, "pass" if found else "fail", found, True, detail))
    return results


def check_back_to_interrupt(data: RunData) -> CheckResult:
    stuck = sorted(line for line, mode in line_modes(data.events).items() if mode != "interrupt")
    names = ", ".join(f"pCPU {p} {t}" for p, t in stuck)
    detail = f"still polling at the end: {names}" if stuck else "every line ended in interrupt mode"
    return CheckResult(LINES_BACK_TO_INTERRUPT, "fail" if stuck else "pass", len(stuck), 0, detail)


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
            check = CheckResult(check.name, "unknown", check.observed, check.bound, detail)
        marked.append(check)
    return marked


def run_checks(data: RunData, acc: Accounting | None = None) -> list[CheckResult]:
    acc = acc or account(data)
    bounds = data.scenario.checks
    checks = [
        check_conservation(data, acc),
        _bounded(
            DUPLICATES,
            acc.duplicates,
            bounds.max_duplicates,
            f"records logged or committed as new more than once; {acc.redelivered} re-deliveries"
            " were recognised and dropped",
        ),
        _bounded(
            CLEARED_BEFORE_LOGGED,
            acc.cleared_before_logged,
            bounds.max_cleared_before_logged,
            "CLEARs that reached a pCPU before dom0 committed the record",
        ),
        *check_latency(data),
        *check_transitions(data),
    ]
    if bounds.all_lines_back_to_interrupt:
        checks.append(check_back_to_interrupt(data))
    return _mark_unknown(checks, data.problems)


def overall_valid(checks: Iterable[CheckResult]) -> Valid:
    statuses = {c.status for c in checks}
    if "fail" in statuses:
        return False
    if "unknown" in statuses:
        return "unknown"
    return True
