"""Scenario files: conversion to the model and its defaults; policies, knobs, bursts, drain,
checks and pCPU sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scenario_helpers import BASE, write

from xenmca.testbed.infra.launcher_args import DOM0_POLICIES
from xenmca.testbed.scenario.errors import ScenarioError
from xenmca.testbed.scenario.loader import load_scenario, parse_scenario_text
from xenmca.testbed.scenario.model import (
    Burst,
    Checks,
    ExpectedTransition,
    Fault,
    Policy,
    Scenario,
    SeverityMix,
    Storm,
    Stream,
    Throttle,
)
from xenmca.testbed.scenario.schema_check import schema
from xenmca.testbed.scenario.workload_fields import parse_pcpu_set
from xenmca.vocab import ALLOW_BROKEN_RULES_ENV
from xenmca.xen.policy import KNOB_NAMES, KNOBS, POLICIES, SAL_MODES

FULL = """
name: full
description: "every field"
seed: 42
pcpus: 8
pcpus_per_host: 4
duration_s: 30
vcpu0_pcpu: 2
capacity: 128
durable_pcpus: false
throttle:
  preset: fast
  settings: {history_length: 6, window: 1.0, cmc_poll_interval: 0.2,
             cpe_poll_min: 0.05, cpe_poll_max: 0.4, cpe_can_interrupt: true}
dom0: {cpe_poll_min_s: 0.1, cpe_poll_max_s: 1, salinfo_decode_delay_s: 0.02}
drain_timeout_s: 45
drain_idle_s: 5
policy:
  xen: xen-ia64-2009
  dom0: linux-salinfo
  options: {after_clear: tail-if-more, get_failure: keep}
sal: plain
workload:
  streams:
    - {type: cmc, rate: 2.0, pcpus: all, severity: {corrected: 0.95, recoverable: 0.05},
       start_s: 0, duration_s: 20}
    - {type: cpe, rate: 1e-1, pcpus: "0-2,6"}
  storms:
    - {type: cmc, pcpus: [3], rate: 2000, start_s: 5, duration_s: 2, severity: corrected}
  bursts:
    - {type: cpe, pcpus: "1-2", count: 40, at_s: 7.5, severity: recoverable}
    - {type: mca, pcpus: 0, count: 1, at_s: 0}
faults:
  - {at_s: 3, kind: kill, target: xen, restart_after_s: 1.5}
checks:
  lost: 0
  duplicates: 1
  cleared_before_logged: 0
  latency_p99_ms: 5000
  latency_max_ms: null
  expect_transitions: [{pcpu: 3, type: cmc, mode: polling}]
  all_lines_back_to_interrupt: false
  stranded: 2
  fairness: {max_overtaken: 7}
  isolation: false
broken_rule: null
"""


# -- conversion ----------------------------------------------------------------------


def test_a_file_with_every_field_converts_to_the_model(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, FULL, "full.yaml"))
    assert scenario == Scenario(
        name="full",
        description="every field",
        seed=42,
        pcpus=8,
        duration_s=30.0,
        vcpu0_pcpu=2,
        pcpus_per_host=4,
        capacity=128,
        durable_pcpus=False,
        throttle=Throttle(
            preset="fast",
            settings={
                "history_length": 6,
                "window": 1.0,
                "cmc_poll_interval": 0.2,
                "cpe_poll_min": 0.05,
                "cpe_poll_max": 0.4,
                "cpe_can_interrupt": True,
            },
        ),
        cpe_poll_min_s=0.1,
        cpe_poll_max_s=1.0,
        drain_timeout_s=45.0,
        streams=(
            Stream("cmc", 2.0, tuple(range(8)), SeverityMix(0.95, 0.05, 0.0), 0.0, 20.0),
            Stream("cpe", 0.1, (0, 1, 2, 6), SeverityMix(1.0, 0.0, 0.0), 0.0, None),
        ),
        storms=(Storm("cmc", (3,), 2000.0, 5.0, 2.0, "corrected"),),
        bursts=(
            Burst("cpe", (1, 2), 40, 7.5, "recoverable"),
            Burst("mca", (0,), 1, 0.0, "corrected"),
        ),
        faults=(Fault(3.0, "kill", "xen", {"restart_after_s": 1.5}),),
        checks=Checks(
            max_lost=0,
            max_duplicates=1,
            max_cleared_before_logged=0,
            latency_p99_ms=5000.0,
            latency_max_ms=None,
            expect_transitions=(ExpectedTransition(3, "cmc", "polling"),),
            all_lines_back_to_interrupt=False,
            max_stranded=2,
            fairness=True,
            max_overtaken=7,
            isolation=False,
        ),
        broken_rule=None,
        policy=Policy(
            xen="xen-ia64-2009",
            dom0="linux-salinfo",
            options={"after_clear": "tail-if-more", "get_failure": "keep"},
        ),
        sal="plain",
        salinfo_decode_delay_s=0.02,
        drain_idle_s=5.0,
    )


def test_defaults_of_a_minimal_file() -> None:
    scenario = parse_scenario_text(BASE)
    assert scenario == Scenario(name="t", description="", seed=1, pcpus=4, duration_s=10.0)
    assert scenario.policy == Policy("xenmca", "xenmca", {}) and scenario.sal == "extended"
    assert scenario.salinfo_decode_delay_s is None and scenario.drain_idle_s == 10.0
    assert scenario.bursts == ()
    checks = scenario.checks
    assert (checks.max_stranded, checks.fairness, checks.max_overtaken, checks.isolation) == (
        0,
        True,
        None,
        True,
    )


# -- policies, bursts, drain and the new checks -----------------------------------------


def test_the_schema_names_exactly_the_policies_knobs_and_sal_modes_of_the_code() -> None:
    policy = schema()["properties"]["policy"]["properties"]
    assert policy["xen"]["enum"] == list(POLICIES)
    assert tuple(policy["dom0"]["enum"]) == DOM0_POLICIES
    assert list(policy["options"]["properties"]) == list(KNOB_NAMES)
    for knob in KNOBS:
        description = policy["options"]["properties"][knob.name]["description"]
        assert all(choice in description for choice in knob.choices), knob.name
    assert tuple(schema()["properties"]["sal"]["enum"]) == SAL_MODES


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_coordinator_policy_loads(name: str) -> None:
    scenario = parse_scenario_text(BASE + f"policy: {{xen: {name}}}\n")
    assert scenario.policy == Policy(xen=name)


@pytest.mark.parametrize("knob", KNOBS, ids=lambda k: k.name)
def test_every_choice_of_every_knob_loads(knob: Any) -> None:
    for choice in knob.choices:
        scenario = parse_scenario_text(BASE + f"policy: {{options: {{{knob.name}: {choice}}}}}\n")
        assert scenario.policy.options == {knob.name: choice}


@pytest.mark.parametrize(
    ("text", "fairness", "bound"),
    [
        ("", True, None),
        ("checks: {fairness: true}\n", True, None),
        ("checks: {fairness: false}\n", False, None),
        ("checks: {fairness: {max_overtaken: 0}}\n", True, 0),
        ("checks: {fairness: {max_overtaken: 12}}\n", True, 12),
    ],
)
def test_fairness_forms(text: str, fairness: bool, bound: int | None) -> None:
    checks = parse_scenario_text(BASE + text).checks
    assert (checks.fairness, checks.max_overtaken) == (fairness, bound)


def test_stranded_and_isolation() -> None:
    checks = parse_scenario_text(BASE + "checks: {stranded: 5, isolation: false}\n").checks
    assert (checks.max_stranded, checks.isolation) == (5, False)


def test_a_burst_defaults_to_corrected_and_resolves_its_pcpus() -> None:
    scenario = parse_scenario_text(
        BASE + "workload: {bursts: [{type: cmc, pcpus: all, count: 1000000, at_s: 9.5}]}\n"
    )
    assert scenario.bursts == (Burst("cmc", (0, 1, 2, 3), 1_000_000, 9.5, "corrected"),)


def test_the_decode_delay_may_be_zero_for_linux_salinfo() -> None:
    scenario = parse_scenario_text(
        BASE + "policy: {dom0: linux-salinfo}\ndom0: {salinfo_decode_delay_s: 0}\n"
    )
    assert scenario.salinfo_decode_delay_s == 0.0


@pytest.mark.parametrize(
    ("text", "idle"),
    [
        ("", 10.0),
        ("drain_idle_s: 0.6\n", 0.6),
        ("drain_idle_s: 1e3\n", 1000.0),
        # Absent, it outlasts the longest polling interval twice over.
        ("throttle: {preset: linux-ia64}\n", 1800.0),
        ("throttle: {settings: {cmc_poll_interval: 8}}\n", 16.0),
        ("dom0: {cpe_poll_max_s: 30}\n", 60.0),
    ],
)
def test_drain_idle_s_and_its_default(text: str, idle: float) -> None:
    assert parse_scenario_text(BASE + text).drain_idle_s == idle


def test_a_severity_name_is_a_mix_of_one() -> None:
    scenario = parse_scenario_text(
        BASE + "workload: {streams: [{type: mca, rate: 1, severity: fatal}]}"
    )
    assert scenario.streams[0].severity == SeverityMix(0.0, 0.0, 1.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("all", (0, 1, 2, 3, 4, 5, 6, 7)),
        (3, (3,)),
        ([5, 1], (1, 5)),
        ("0-3", (0, 1, 2, 3)),
        ("0-3,6", (0, 1, 2, 3, 6)),
        (" 1 - 2 , 7 ", (1, 2, 7)),
    ],
)
def test_pcpu_sets(value: Any, expected: tuple[int, ...]) -> None:
    assert parse_pcpu_set(value, 8) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [("8", "pCPU 8 does not exist"), ("3-1", "runs backwards"), ([1, 1], "more than once")],
)
def test_bad_pcpu_sets(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_pcpu_set(value, 8)


def test_a_broken_rule_is_accepted_only_with_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    text = BASE + "broken_rule: clear-on-get\n"
    monkeypatch.delenv(ALLOW_BROKEN_RULES_ENV, raising=False)
    with pytest.raises(ScenarioError, match="broken_rule: 'clear-on-get' is a test-only"):
        parse_scenario_text(text, "t.yaml")
    monkeypatch.setenv(ALLOW_BROKEN_RULES_ENV, "1")
    assert parse_scenario_text(text).broken_rule == "clear-on-get"
    with pytest.raises(ScenarioError, match="broken_rule: unknown rule 'clear-early'"):
        parse_scenario_text(BASE + "broken_rule: clear-early\n", "t.yaml")


def test_yaml_floats_in_exponent_form_are_numbers() -> None:
    scenario = parse_scenario_text(
        BASE + "workload: {storms: [{type: cmc, rate: 2e3, pcpus: all, duration_s: 1}]}"
    )
    assert scenario.storms[0].rate == 2000.0
