"""Latency bounds in scenario files: absolute (ms) or relative to the machine (floors), not
both; every built-in scenario is bounded relatively or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from xenmca.testbed.scenario.errors import ScenarioError
from xenmca.testbed.scenario.loader import (
    builtin_names,
    load_builtin,
    load_scenario,
    parse_scenario_text,
)
from xenmca.testbed.scenario.model import Checks

ROOT = Path(__file__).resolve().parent.parent
BASE = """
name: bounds
seed: 1
pcpus: 2
duration_s: 5
checks:
"""


def checks_of(text: str) -> Checks:
    return parse_scenario_text(BASE + text, "bounds.yaml").checks


def test_relative_bounds_are_read() -> None:
    checks = checks_of("  latency_p99_floors: 2000\n  latency_max_floors: 1e4\n")
    assert checks.latency_p99_floors == 2000.0
    assert checks.latency_max_floors == 10000.0
    assert checks.latency_p99_ms is None
    plain = checks_of("  lost: 0\n")
    assert plain.latency_p99_floors is None and plain.latency_max_floors is None


@pytest.mark.parametrize("quantile", ["p99", "max"])
def test_both_forms_of_one_bound_are_one_clear_error(quantile: str) -> None:
    text = f"  latency_{quantile}_ms: 5000\n  latency_{quantile}_floors: 2000\n"
    with pytest.raises(ScenarioError) as caught:
        checks_of(text)
    message = str(caught.value)
    assert message.startswith(f"bounds.yaml: checks.latency_{quantile}_floors: ")
    assert f"latency_{quantile}_ms" in message and "not both" in message
    assert "\n" not in message


def test_mixing_forms_across_bounds_is_allowed() -> None:
    checks = checks_of("  latency_p99_floors: 2000\n  latency_max_ms: 60000\n")
    assert checks.latency_max_ms == 60000.0


@pytest.mark.parametrize("value", ["0", "-5", "'many'"])
def test_a_relative_bound_must_be_a_positive_number(value: str) -> None:
    with pytest.raises(ScenarioError, match=r"checks\.latency_p99_floors"):
        checks_of(f"  latency_p99_floors: {value}\n")


def test_a_null_relative_bound_is_no_bound() -> None:
    assert checks_of("  latency_p99_floors: null\n").latency_p99_floors is None


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_scenarios_bound_latency_relatively_or_not_at_all(name: str) -> None:
    checks = load_builtin(name).checks
    assert checks.latency_p99_ms is None and checks.latency_max_ms is None, name


def test_the_soak_bounds_latency_relatively_or_not_at_all() -> None:
    checks = load_scenario(ROOT / "scenarios" / "soak-100k.yaml").checks
    assert checks.latency_p99_ms is None and checks.latency_max_ms is None


def test_the_fault_free_builtins_keep_a_relative_p99_bound() -> None:
    bounded = {n: load_builtin(n).checks.latency_p99_floors for n in builtin_names()}
    assert {n for n, floors in bounded.items() if floors} == {
        "demo",
        "cmc-storm",
        "cpe-polling",
        "mixed",
    }
