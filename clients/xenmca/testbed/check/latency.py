"""The latency checks: bounds on the time from a record's creation in firmware to dom0's log.

Absolute bounds (``latency_p99_ms``, ``latency_max_ms``) are milliseconds. Relative
bounds (``latency_p99_floors``, ``latency_max_floors``) are N floors plus the
scenario's longest polling interval. A floor is the least time one record takes on
this machine, 4 round trips and 1 durable commit, as the run measured it before its
workload and again after its drain (the slower of the two counts;
`xenmca.testbed.run.calibration`). A record of a storm waits behind the records ahead of
it, each costing a few floors, so on a slower or busier machine the latency grows
with the floor, and so does the bound; the polling interval is added because a
record on a polled line waits for the next poll however fast the machine is.
Either form names the records slower than its bound, slowest first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from xenmca.testbed.check.result import CheckResult, Status
from xenmca.testbed.check.slowest import slower_than
from xenmca.testbed.run.calibration import calibrations, floor_of_run
from xenmca.testbed.run.data import LoggedRecord, RunData
from xenmca.testbed.scenario.poll_intervals import scenario_poll_allowance

LATENCY_P99 = "latency_p99"
LATENCY_MAX = "latency_max"


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


def relative_bound_ms(data: RunData, floors: float) -> tuple[float | None, str]:
    """(floors x the run's floor + the longest polling interval, in ms; how it was made).

    None, with the reason, when the run has no calibration.
    """
    floor_ms, which = floor_of_run(data.events)
    if floor_ms is None:
        return None, which
    setting, poll_s = scenario_poll_allowance(data.scenario)
    bound = floors * floor_ms + poll_s * 1000
    other = {w: c.get("floor_ms") for w, c in calibrations(data.events).items() if w != which}
    also = "".join(f", {w} {v:g} ms" for w, v in other.items() if v is not None)
    how = (
        f"{floors:g} floors x {floor_ms:g} ms (the {which} calibration's{also})"
        f" + {poll_s:g} s polling ({setting}) = {bound:,.1f} ms"
    )
    return bound, how


def _bounds(data: RunData) -> list[tuple[str, float, float | None, str]]:
    """(name, quantile, bound in ms or None, how the bound was made) of each bounded latency."""
    checks = data.scenario.checks
    wanted = [
        (LATENCY_P99, 99.0, checks.latency_p99_ms, checks.latency_p99_floors),
        (LATENCY_MAX, 100.0, checks.latency_max_ms, checks.latency_max_floors),
    ]
    bounds: list[tuple[str, float, float | None, str]] = []
    for name, q, absolute, floors in wanted:
        if absolute is not None:
            bounds.append((name, q, absolute, f"bound {absolute:g} ms"))
        elif floors is not None:
            bound, how = relative_bound_ms(data, floors)
            bounds.append((name, q, bound, f"bound {how}"))
    return bounds


def check_latency(data: RunData) -> list[CheckResult]:
    values = latencies_ms(data.log)
    results = []
    for name, q, bound, how in _bounds(data):
        if bound is None:
            why = f"no bound: {how.removeprefix('bound ')}"
            results.append(CheckResult(name, "unknown", None, None, why))
            continue
        shown = round(bound, 1)
        if not values:
            status: Status = "unknown" if data.log else "pass"
            why = "no logged record carries its creation time" if data.log else "nothing logged"
            results.append(CheckResult(name, status, None, shown, f"{why}; {how}"))
            continue
        observed = percentile(values, q)
        assert observed is not None
        detail = f"ms from injection to durable log over {len(values)} records; {how}"
        slow = slower_than(data.log, bound)
        if slow:
            detail += f"; {len(slow)} slower than {bound:g} ms, the slowest {slow[0].label()}"
        status = "pass" if observed <= bound else "fail"
        result = CheckResult(name, status, round(observed, 3), shown, detail)
        results.append(result.naming(slow, ordered=True))
    return results
