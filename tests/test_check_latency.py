"""Relative latency bounds: N floors (4 round trips + 1 commit, calibrated by the run) plus the
scenario's longest polling interval; absolute bounds unchanged; no calibration is "unknown"."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from test_checkers_data import MS, START_NS, event, synthetic_run

from xenmca.testbed.check.checkers import overall_valid, run_checks
from xenmca.testbed.run.calibration import calibration_results, floor_of_run
from xenmca.testbed.run.data import RunData
from xenmca.testbed.scenario.model import Checks, Throttle
from xenmca.testbed.scenario.poll_intervals import scenario_poll_allowance


def calibration(when: str, rtt_ms: float, commit_ms: float, t_ns: int) -> dict[str, Any]:
    return event(
        t_ns,
        "runner",
        "calibration",
        when=when,
        rtt_ms=rtt_ms,
        commit_ms=commit_ms,
        floor_ms=4 * rtt_ms + commit_ms,
        rtt_calls=64,
        commits=30,
        rtt_ms_by_target={"xen": rtt_ms},
        errors=[],
        took_s=0.05,
    )


def relative_run(
    latency_ms: float,
    floors: float,
    *,
    start: tuple[float, float] | None = (0.5, 0.2),
    end: tuple[float, float] | None = (0.5, 0.2),
    checks: dict[str, Any] | None = None,
) -> RunData:
    """A clean run whose records took latency_ms, bounded at p99 by `floors` floors."""
    bounds = Checks(latency_p99_floors=floors, **(checks or {}))
    data = synthetic_run(latency_ms=latency_ms, storm=False, checks=bounds)
    extra = []
    if start is not None:
        extra.append(calibration("start", *start, START_NS - 100 * MS))
    if end is not None:
        extra.append(calibration("end", *end, data.end_ns - MS))
    events = sorted([*data.events, *extra], key=lambda e: e["t_mono_ns"])
    return dataclasses.replace(data, events=events)


def latency_check(data: RunData) -> Any:
    (check,) = [c for c in run_checks(data) if c.name == "latency_p99"]
    return check


def test_the_bound_is_floors_times_the_floor_plus_the_longest_poll() -> None:
    data = relative_run(latency_ms=5.0, floors=100)
    setting, poll_s = scenario_poll_allowance(data.scenario)
    assert (setting, poll_s) == ("throttle cpe_poll_max", 0.5)  # the fast preset's
    check = latency_check(data)
    floor = 4 * 0.5 + 0.2
    assert check.bound == pytest.approx(100 * floor + 500)
    assert check.status == "pass" and check.observed == pytest.approx(5.0)
    assert "100 floors x 2.2 ms" in check.detail and "0.5 s polling" in check.detail


def test_a_record_slower_than_the_bound_fails_and_is_named() -> None:
    floor = 4 * 0.5 + 0.2
    check = latency_check(relative_run(latency_ms=600.0, floors=10))
    assert check.bound == pytest.approx(10 * floor + 500)
    assert check.status == "fail"
    assert check.records_total == 10 and check.records[0].note.endswith("ms")


def test_the_slower_calibration_counts() -> None:
    data = relative_run(latency_ms=5.0, floors=100, start=(0.5, 0.2), end=(1.0, 3.0))
    assert floor_of_run(data.events) == (7.0, "end")
    check = latency_check(data)
    assert check.bound == pytest.approx(100 * 7.0 + 500)
    assert "the end calibration's, start 2.2 ms" in check.detail
    results = calibration_results(data.events)
    assert results is not None
    assert results["floor_ms"] == 7.0 and results["floor_from"] == "end"
    assert results["start"]["floor_ms"] == pytest.approx(2.2)
    assert "t_mono_ns" not in results["start"]


def test_a_busier_machine_gets_a_proportionally_looser_bound() -> None:
    quiet = latency_check(relative_run(latency_ms=1200.0, floors=300))
    busy = latency_check(
        relative_run(latency_ms=1200.0, floors=300, start=(2.0, 2.0), end=(2.0, 3.0))
    )
    assert quiet.status == "fail" and busy.status == "pass"
    assert busy.bound - 500 == pytest.approx((quiet.bound - 500) * 11.0 / 2.2)


def test_the_polling_interval_comes_from_the_scenario() -> None:
    data = relative_run(latency_ms=5.0, floors=100)
    slow_polls = dataclasses.replace(
        data.scenario, throttle=Throttle("fast", {"cmc_poll_interval": 3.0}), cpe_poll_max_s=1.0
    )
    data = dataclasses.replace(data, scenario=slow_polls)
    assert scenario_poll_allowance(data.scenario) == ("throttle cmc_poll_interval", 3.0)
    assert latency_check(data).bound == pytest.approx(100 * 2.2 + 3000)


def test_without_a_calibration_the_relative_check_is_unknown() -> None:
    data = relative_run(latency_ms=5.0, floors=100, start=None, end=None)
    check = latency_check(data)
    assert check.status == "unknown" and check.bound is None
    assert "no calibration" in check.detail
    assert overall_valid(run_checks(data)) == "unknown"
    assert calibration_results(data.events) is None


def test_one_calibration_is_enough() -> None:
    data = relative_run(latency_ms=5.0, floors=100, start=(0.5, 0.2), end=None)
    assert latency_check(data).bound == pytest.approx(100 * 2.2 + 500)


def test_max_takes_a_relative_bound_too_and_absolute_bounds_are_unchanged() -> None:
    data = relative_run(latency_ms=5.0, floors=100, checks={"latency_max_floors": 1})
    checks = {c.name: c for c in run_checks(data)}
    assert checks["latency_max"].bound == pytest.approx(2.2 + 500)
    assert checks["latency_max"].status == "pass"
    absolute = synthetic_run(latency_ms=80.0, checks=Checks(latency_p99_ms=50.0))
    (check,) = [c for c in run_checks(absolute) if c.name == "latency_p99"]
    assert check.bound == 50.0 and check.status == "fail"
    assert "bound 50 ms" in check.detail


def test_an_absolute_bound_wins_when_a_model_has_both() -> None:
    data = relative_run(latency_ms=5.0, floors=1, checks={"latency_p99_ms": 1000.0})
    check = latency_check(data)
    assert check.bound == 1000.0 and check.status == "pass"


def test_a_calibration_event_of_another_component_is_ignored() -> None:
    data = relative_run(latency_ms=5.0, floors=100, start=None, end=None)
    stray = event(START_NS, "xen", "calibration", when="start", floor_ms=1.0)
    data = dataclasses.replace(data, events=[stray, *data.events])
    assert latency_check(data).status == "unknown"
