"""The workload's plan: deterministic from the seed, streams independent per pCPU, storms and
bursts as paced and unpaced injections, Poisson arrivals, and the built-in scenarios sized
for CI with steady streams that never trip the storm rule by chance.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter

import pytest
from storm_trips import storm_trips

from xenmca.testbed.run.workload_plan import PlannedInjection, plan_injections, planned_records
from xenmca.testbed.scenario.loader import builtin_names, load_builtin, parse_scenario_text

SCENARIO = """
name: w
seed: {seed}
pcpus: 4
duration_s: 20
workload:
  streams:
    - {{type: cmc, rate: 1.5, pcpus: all, severity: {{corrected: 0.7, recoverable: 0.3}}}}
    - {{type: cpe, rate: 0.5, pcpus: "0-1", start_s: 5, duration_s: 10}}
  storms:
    - {{type: cmc, pcpus: [2, 3], rate: 1000, start_s: 4, duration_s: 1.5, severity: fatal}}
"""


def scenario(seed: int = 1, text: str = SCENARIO):
    return parse_scenario_text(text.format(seed=seed))


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    first, again, other = plan_injections(scenario(1)), plan_injections(scenario(1)), None
    assert first == again
    assert [i.source for i in first] == [i.source for i in again]
    other = plan_injections(scenario(2))
    assert other != first
    # Storms do not depend on the seed; the Poisson arrivals do.
    assert [i for i in first if i.rate > 0] == [i for i in other if i.rate > 0]


def test_a_stream_on_one_pcpu_does_not_depend_on_the_others() -> None:
    """Each (stream, pCPU) has its own generator: adding a pCPU leaves the others' arrivals."""
    narrow = scenario(text=SCENARIO.replace("pcpus: all", "pcpus: [0, 1]"))
    wide = scenario()
    narrow_times = [i for i in plan_injections(narrow) if i.pcpu == 1]
    wide_times = [i for i in plan_injections(wide) if i.pcpu == 1]
    assert narrow_times == wide_times


def test_the_plan_is_sorted_and_inside_each_window() -> None:
    plan = plan_injections(scenario())
    assert plan == sorted(plan)
    for injection in plan:
        if injection.source == "streams[0]":
            assert 0 <= injection.t_s < 20 and injection.count == 1 and injection.rate == 0
        elif injection.source == "streams[1]":
            assert 5 <= injection.t_s < 15 and injection.pcpu in (0, 1)
            assert injection.type == "cpe" and injection.severity == "corrected"


def test_each_storm_is_one_paced_injection_per_pcpu() -> None:
    storms = [i for i in plan_injections(scenario()) if i.rate > 0]
    assert storms == [
        PlannedInjection(4.0, 2, "cmc", "fatal", 1500, 1000.0, "storms[0]"),
        PlannedInjection(4.0, 3, "cmc", "fatal", 1500, 1000.0, "storms[0]"),
    ]


BURSTS = """
name: b
seed: {seed}
pcpus: 4
duration_s: 10
workload:
  streams:
    - {{type: cmc, rate: 1, pcpus: all}}
  bursts:
    - {{type: cmc, pcpus: [1, 3], count: 25, at_s: 2.5}}
    - {{type: cpe, pcpus: "0-3", count: 1, at_s: 0, severity: fatal}}
    - {{type: cmc, pcpus: 2, count: 1000, at_s: 9.75, severity: recoverable}}
"""


def test_each_burst_is_one_unpaced_injection_per_pcpu_at_its_time() -> None:
    plan = plan_injections(scenario(text=BURSTS))
    bursts = [i for i in plan if i.source.startswith("bursts")]
    assert bursts == [
        PlannedInjection(0.0, 0, "cpe", "fatal", 1, 0.0),
        PlannedInjection(0.0, 1, "cpe", "fatal", 1, 0.0),
        PlannedInjection(0.0, 2, "cpe", "fatal", 1, 0.0),
        PlannedInjection(0.0, 3, "cpe", "fatal", 1, 0.0),
        PlannedInjection(2.5, 1, "cmc", "corrected", 25, 0.0),
        PlannedInjection(2.5, 3, "cmc", "corrected", 25, 0.0),
        PlannedInjection(9.75, 2, "cmc", "recoverable", 1000, 0.0),
    ]
    assert [i.source for i in bursts] == ["bursts[1]"] * 4 + ["bursts[0]"] * 2 + ["bursts[2]"]
    assert plan == sorted(plan)
    streams = [i for i in plan if i.source == "streams[0]"]
    assert planned_records(plan)["total"] == len(streams) + 4 + 50 + 1000


def test_bursts_are_the_same_for_every_seed_and_leave_the_streams_alone() -> None:
    first, again, other = (plan_injections(scenario(s, BURSTS)) for s in (1, 1, 2))
    assert first == again
    assert [i.source for i in first] == [i.source for i in again]
    bursts = [[i for i in p if i.source.startswith("bursts")] for p in (first, other)]
    assert bursts[0] == bursts[1]
    without = BURSTS.split("  bursts:", 1)[0]
    assert [i for i in first if i.source == "streams[0]"] == plan_injections(scenario(1, without))


def test_a_burst_of_five_trips_the_storm_rule_of_its_line() -> None:
    """A burst is created at once: its records are arrivals at the same instant."""
    burst = [PlannedInjection(1.0, 0, "cmc", "corrected", 5)]
    assert storm_trips(burst) == {(0, "cmc"): 1}
    assert storm_trips([PlannedInjection(1.0, 0, "cmc", "corrected", 4)]) == {}


def test_poisson_arrivals_have_the_stream_rate_and_exponential_gaps() -> None:
    text = """
name: long
seed: 5
pcpus: 2
duration_s: 10000
workload:
  streams: [{type: cmc, rate: 2.0, pcpus: all, severity: {corrected: 3, fatal: 1}}]
"""
    plan = plan_injections(parse_scenario_text(text))
    for pcpu in (0, 1):
        times = [i.t_s for i in plan if i.pcpu == pcpu]
        # 20 000 expected; the standard deviation of a Poisson count is sqrt(20 000) ~ 141.
        assert abs(len(times) - 20_000) < 600
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert statistics.fmean(gaps) == pytest.approx(0.5, rel=0.03)
        # Exponential: the standard deviation equals the mean.
        assert statistics.stdev(gaps) == pytest.approx(0.5, rel=0.05)
    severities = Counter(i.severity for i in plan)
    assert severities["recoverable"] == 0
    assert severities["fatal"] / len(plan) == pytest.approx(0.25, abs=0.02)


def test_planned_records_per_type() -> None:
    plan = [
        PlannedInjection(0.0, 0, "cmc", "corrected"),
        PlannedInjection(1.0, 1, "cpe", "corrected"),
        PlannedInjection(2.0, 1, "cmc", "fatal", 100, 50.0),
    ]
    assert planned_records(plan) == {"cmc": 101, "cpe": 1, "total": 102}


def test_storm_trips_count_five_within_a_second() -> None:
    burst = [PlannedInjection(0.2 * k, 0, "cmc", "corrected") for k in range(5)]  # 0.0 .. 0.8
    spread = [PlannedInjection(0.3 * k, 1, "cmc", "corrected") for k in range(5)]  # 0.0 .. 1.2
    assert storm_trips(burst + spread) == {(0, "cmc"): 1}
    assert storm_trips(burst + spread, margin=0.3) == {(0, "cmc"): 1, (1, "cmc"): 1}
    edge = [PlannedInjection(0.25 * k, 3, "cmc", "corrected") for k in range(5)]  # 0.0 .. 1.0
    assert storm_trips(edge) == {(3, "cmc"): 1}  # a window is inclusive: 1.0 s apart is within
    storm = [PlannedInjection(0.0, 2, "cpe", "corrected", 10, 100.0)]
    assert storm_trips(storm) == {}
    # The rule counts afresh after each storm: records 5 and 10 trip it.
    assert storm_trips(storm, include_storms=True) == {(2, "cpe"): 2}


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_steady_streams_never_trip_the_storm_rule_by_chance(name: str) -> None:
    """Only the storms make lines poll, so expect_transitions and the demo stay predictable.

    Bursts are placed by hand (the hazard scenarios trip the rule with them on purpose)."""
    built = load_builtin(name)
    plan = [i for i in plan_injections(built) if not i.source.startswith("bursts")]
    assert storm_trips(plan, margin=0.3) == {}
    storming = {(p, s.type) for s in built.storms for p in s.pcpus}
    for transition in built.checks.expect_transitions:
        assert (transition.pcpu, transition.type) in storming


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_scenarios_are_ci_sized(name: str) -> None:
    built = load_builtin(name)
    assert built.duration_s <= 60
    plan = plan_injections(built)
    assert len(plan) < 2000  # calls
    assert planned_records(plan)["total"] < 50_000
    if built.checks.all_lines_back_to_interrupt:
        # Storms end well before the workload does, leaving time to poll back.
        assert all(s.start_s + s.duration_s <= built.duration_s - 5 for s in built.storms)
