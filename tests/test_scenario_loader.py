"""Scenario files: the schema, the built-in scenarios, and one clear line for every bad file."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from xenmca.testbed.infra.launcher_args import DOM0_POLICIES
from xenmca.testbed.scenario.errors import ScenarioError
from xenmca.testbed.scenario.loader import (
    builtin_names,
    builtin_path,
    load_builtin,
    load_scenario,
    parse_scenario_text,
)
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
from xenmca.testbed.scenario.schema_check import SCHEMA_PATH, schema
from xenmca.testbed.scenario.workload_fields import parse_pcpu_set
from xenmca.vocab import ALLOW_BROKEN_RULES_ENV
from xenmca.xen.policy import KNOB_NAMES, KNOBS, POLICIES, SAL_MODES

BASE = "name: t\nseed: 1\npcpus: 4\nduration_s: 10\n"

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


def write(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- the schema and the built-ins ----------------------------------------------------


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _objects(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append((path, node))
        for key, value in node.items():
            found.extend(_objects(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_objects(value, f"{path}/{index}"))
    return found


def test_every_object_is_closed_except_faults_and_every_field_is_described() -> None:
    for path, node in _objects(schema()):
        if path == "/$defs/fault":
            assert "additionalProperties" not in node  # other keys are the fault's params
        else:
            assert node.get("additionalProperties") is False, path
    for path, node in _objects(schema()):
        for name, prop in node.get("properties", {}).items():
            if path == "/$defs/severity_mix" or path.endswith("/transition"):
                continue
            assert prop.get("description") or "$ref" in prop, f"{path}.{name}"


@pytest.mark.parametrize("name", ["demo", "cmc-storm", "cpe-polling", "mixed"])
def test_every_builtin_scenario_loads(name: str) -> None:
    assert name in builtin_names()
    scenario = load_builtin(name)
    assert scenario.name == name
    assert 0 < scenario.duration_s <= 60
    assert scenario.streams or scenario.storms
    assert builtin_path(name).name == f"{name}.yaml"


def test_the_builtins_are_package_files_found_through_importlib_resources() -> None:
    scenarios = files("xenmca.testbed.scenario") / "builtin"
    names = sorted(
        entry.name.removesuffix(".yaml")
        for entry in scenarios.iterdir()
        if entry.name.endswith(".yaml")
    )
    assert names == builtin_names()
    assert (scenarios / "demo.yaml").read_text() == builtin_path("demo").read_text()


def test_the_demo_shows_every_part_of_the_flow() -> None:
    demo = load_builtin("demo")
    assert demo.pcpus == 8
    cmc = [s for s in demo.streams if s.type == "cmc"]
    assert cmc and set(cmc[0].pcpus) == set(range(8)) and cmc[0].rate < 4
    assert demo.vcpu0_pcpu in cmc[0].pcpus  # local calls, and IPIs for the others
    assert any(s.type == "cpe" for s in demo.streams)
    storm_pcpus = {p for s in demo.storms if s.type == "cmc" for p in s.pcpus}
    expected = {(t.pcpu, t.type, t.mode) for t in demo.checks.expect_transitions}
    assert {(p, "cmc", "polling") for p in storm_pcpus} <= expected
    assert {(p, "cmc", "interrupt") for p in storm_pcpus} <= expected


def test_unknown_builtin_names_the_known_ones() -> None:
    with pytest.raises(ScenarioError, match=r"no built-in scenario 'nope'.*demo"):
        builtin_path("nope")
    with pytest.raises(ScenarioError):
        builtin_path("../etc/passwd")


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


# -- bad files: one line naming the file and the field --------------------------------

BAD_FILES = [
    # (case, text appended to BASE or whole file, expected line after "bad.yaml: ")
    (
        "wrong type",
        BASE.replace("pcpus: 4", "pcpus: four"),
        "pcpus: 'four' is a string, expected an integer",
    ),
    (
        "negative rate",
        BASE + "workload: {streams: [{type: cmc, rate: -1}]}",
        "workload.streams[0].rate: -1 is less than the minimum of 0",
    ),
    (
        "unknown key",
        BASE + "workload: {streams: [{type: cmc, rate: 1, pcpu: 3}]}",
        "workload.streams[0].pcpu: unknown field "
        "(allowed: duration_s, pcpus, rate, severity, start_s, type)",
    ),
    (
        "unknown top-level key",
        BASE + "seeds: 3\n",
        "seeds: unknown field (allowed: broken_rule, capacity, checks, description, dom0, "
        "drain_idle_s, drain_timeout_s, durable_pcpus, duration_s, faults, name, network, "
        "pcpus, pcpus_per_host, policy, sal, seed, settle_timeout_s, throttle, vcpu0_moves, "
        "vcpu0_pcpu, workload)",
    ),
    (
        "pcpu out of range",
        BASE + "workload: {storms: [{type: cmc, rate: 10, pcpus: [4], duration_s: 1}]}",
        "workload.storms[0].pcpus: pCPU 4 does not exist (pcpus is 4: 0-3)",
    ),
    (
        "pcpu range out of range",
        BASE + "workload: {streams: [{type: cmc, rate: 1, pcpus: '2-5'}]}",
        "workload.streams[0].pcpus: pCPU 4 does not exist (pcpus is 4: 0-3)",
    ),
    (
        "vcpu0 out of range",
        BASE + "vcpu0_pcpu: 4\n",
        "vcpu0_pcpu: pCPU 4 does not exist (pcpus is 4: 0-3)",
    ),
    (
        "stream past the duration",
        BASE + "workload: {streams: [{type: cmc, rate: 1, start_s: 5, duration_s: 6}]}",
        "workload.streams[0].duration_s: ends at 11 s, after the end of the workload "
        "(duration_s 10)",
    ),
    (
        "storm past the duration",
        BASE + "workload: {storms: [{type: cpe, rate: 9, pcpus: all, start_s: 10, duration_s: 1}]}",
        "workload.storms[0].start_s: starts at 10 s, not before the end of the workload "
        "(duration_s 10)",
    ),
    (
        "bad YAML",
        BASE + "workload: {streams: [\n  bad: : x\n",
        "line 6, column 8: invalid YAML: expected the node content, but found ':'",
    ),
    ("duplicate key", BASE + "seed: 2\n", "line 5, column 1: invalid YAML: duplicate key 'seed'"),
    ("missing required field", "name: t\npcpus: 4\nduration_s: 10\n", "seed: is required"),
    (
        "missing storm duration",
        BASE + "workload: {storms: [{type: cmc, rate: 10, pcpus: all}]}",
        "workload.storms[0].duration_s: is required",
    ),
    (
        "broken rule without the env var",
        BASE + "broken_rule: clear-on-get\n",
        "broken_rule: 'clear-on-get' is a test-only setting; it is accepted only with "
        "XENMCA_ALLOW_BROKEN_RULES=1 in the environment",
    ),
    (
        "bad name",
        BASE.replace("name: t", "name: My Demo"),
        "name: 'My Demo' must be lower-case letters, digits and dashes "
        "(starting with a letter or digit)",
    ),
    (
        "bad record type",
        BASE + "workload: {streams: [{type: nmi, rate: 1}]}",
        "workload.streams[0].type: 'nmi' is not one of ['mca', 'init', 'cmc', 'cpe']",
    ),
    (
        "bad severity",
        BASE + "workload: {streams: [{type: cmc, rate: 1, severity: minor}]}",
        "workload.streams[0].severity: 'minor' is not valid here; expected one severity "
        "(corrected, recoverable or fatal), or a mapping of weights drawn per record, "
        "like {corrected: 0.9, recoverable: 0.1}",
    ),
    (
        "negative severity weight",
        BASE + "workload: {streams: [{type: cmc, rate: 1, severity: {corrected: -1}}]}",
        "workload.streams[0].severity.corrected: -1 is less than the minimum of 0",
    ),
    (
        "severity weights summing to zero",
        BASE + "workload: {streams: [{type: cmc, rate: 1, severity: {fatal: 0}}]}",
        "workload.streams[0].severity: the weights must have a positive sum",
    ),
    (
        "bad pcpu set",
        BASE + "workload: {streams: [{type: cmc, rate: 1, pcpus: some}]}",
        "workload.streams[0].pcpus: 'some' is not valid here; expected which pCPUs: \"all\", "
        'one index, a list of indices, or a range string like "0-3" or "0-3,6"',
    ),
    (
        "bad throttle setting",
        BASE + "throttle: {settings: {window: 0}}\n",
        "throttle.settings.window: window must be between 0.001 and 86400 seconds",
    ),
    (
        "unknown throttle setting",
        BASE + "throttle: {settings: {storm_window: 1}}\n",
        "throttle.settings.storm_window: unknown field (allowed: bucket_agetime, "
        "bucket_capacity, cmc_poll_interval, cmci_poll_interval, cmci_storm_begin, "
        "cmci_storm_end_polls, cmci_tick, cpe_can_interrupt, cpe_poll_max, cpe_poll_min, "
        "history_length, policy, window)",
    ),
    (
        "unknown preset",
        BASE + "throttle: {preset: slow}\n",
        "throttle.preset: unknown preset 'slow' (known: linux-ia64, fast)",
    ),
    (
        "dom0 poll interval min above max",
        BASE + "dom0: {cpe_poll_min_s: 2, cpe_poll_max_s: 1}\n",
        "dom0.cpe_poll_min_s: 2 is more than cpe_poll_max_s (1)",
    ),
    (
        "absurd storm per pCPU",
        BASE + "workload: {storms: [{type: cmc, rate: 1000000, pcpus: [0], duration_s: 2}]}",
        "workload.storms[0].rate: rate * duration_s is 2,000,000 records per pCPU; "
        "at most 1,000,000 (one paced injection)",
    ),
    (
        "absurd storm in all",
        BASE.replace("pcpus: 4", "pcpus: 64")
        + "workload: {storms: [{type: cmc, rate: 500000, pcpus: all, duration_s: 1}]}",
        "workload.storms[0].pcpus: 500,000 records on each of 64 pCPUs is 32,000,000; "
        "at most 10,000,000",
    ),
    (
        "absurd stream",
        BASE + "workload: {streams: [{type: cmc, rate: 1000000}]}",
        "workload.streams[0].rate: asks for about 40,000,000 records "
        "(rate * duration * 4 pCPUs); at most 10,000,000",
    ),
    (
        "expected transition on a missing pCPU",
        BASE + "checks: {expect_transitions: [{pcpu: 7, type: cmc, mode: polling}]}",
        "checks.expect_transitions[0].pcpu: pCPU 7 does not exist (pcpus is 4: 0-3)",
    ),
    (
        "fault without target",
        BASE + "faults: [{at_s: 1, kind: kill}]",
        "faults[0].target: is required",
    ),
    (
        "fault after the workload",
        BASE + "faults: [{at_s: 100, kind: kill, target: xen}]",
        "faults[0].at_s: 100 s is not within the workload (duration_s 10); "
        "faults still active when it ends are healed before the drain",
    ),
    (
        "unknown fault kind",
        BASE + "faults: [{at_s: 1, kind: explode, target: xen}]",
        "faults[0].kind: 'explode' is not one of ['kill', 'pause', 'rpc', 'partition']",
    ),
    (
        "fault target",
        BASE + "faults: [{at_s: 1, kind: kill, target: pcpu:99}]",
        "faults[0].target: pCPU 99 does not exist (pcpus is 4)",
    ),
    (
        "pause without a duration",
        BASE + "faults: [{at_s: 1, kind: pause, target: dom0}]",
        "faults[0].duration_s: is required",
    ),
    (
        "rpc fault with a bad action",
        BASE + "faults: [{at_s: 1, kind: rpc, target: xen, method: "
        "HypervisorService.GetStateInfo, action: explode}]",
        "faults[0].action: fault rule 'action': unknown fault action 'explode' "
        "(choose from drop-reply, delay, fail)",
    ),
    (
        "partition without netns",
        BASE + "faults: [{at_s: 1, kind: partition, target: dom0, duration_s: 1}]",
        "faults[0].kind: a partition needs network: netns (run as root)",
    ),
    (
        "unknown coordinator policy",
        BASE + "policy: {xen: xen-2000}\n",
        "policy.xen: 'xen-2000' is not one of ['xenmca', 'xen-ia64-2006', 'xen-ia64-2009']",
    ),
    (
        "unknown dom0 policy",
        BASE + "policy: {dom0: windows}\n",
        "policy.dom0: 'windows' is not one of ['xenmca', 'linux-salinfo']",
    ),
    (
        "unknown policy field",
        BASE + "policy: {flavour: x}\n",
        "policy.flavour: unknown field (allowed: dom0, options, xen)",
    ),
    (
        "policy not a mapping",
        BASE + "policy: xenmca\n",
        "policy: 'xenmca' is a string, expected a mapping",
    ),
    (
        "unknown policy choice",
        BASE + "policy: {options: {after_clear: sideways}}\n",
        "policy.options.after_clear: unknown choice 'sideways' (known: tail-if-more, head, free)",
    ),
    (
        "unknown policy knob",
        BASE + "policy: {options: {afterclear: head}}\n",
        "policy.options.afterclear: unknown field (allowed: after_clear, clear_failure, "
        "clear_target, delivery, entries, get_failure, ipi, poll_count, routing, storm_scope)",
    ),
    (
        "policy choice not a string",
        BASE + "policy: {options: {ipi: 3}}\n",
        "policy.options.ipi: 3 is an integer, expected a string",
    ),
    ("unknown sal", BASE + "sal: fancy\n", "sal: 'fancy' is not one of ['extended', 'plain']"),
    (
        "negative decode delay",
        BASE + "policy: {dom0: linux-salinfo}\ndom0: {salinfo_decode_delay_s: -1}\n",
        "dom0.salinfo_decode_delay_s: -1 is less than the minimum of 0",
    ),
    (
        "decode delay without linux-salinfo",
        BASE + "dom0: {salinfo_decode_delay_s: 0.1}\n",
        "dom0.salinfo_decode_delay_s: applies only to policy.dom0 linux-salinfo "
        "(policy.dom0 is xenmca)",
    ),
    (
        "zero drain idle",
        BASE + "drain_idle_s: 0\n",
        "drain_idle_s: 0 is less than or equal to the minimum of 0",
    ),
    (
        "drain idle not a number",
        BASE + "drain_idle_s: ten\n",
        "drain_idle_s: 'ten' is a string, expected a number",
    ),
    (
        "drain idle within a polling interval",
        BASE + "drain_idle_s: 0.5\n",
        "drain_idle_s: 0.5 s is not longer than the longest polling interval "
        "(throttle cpe_poll_max 0.5 s): records waiting for a poll would be called stranded",
    ),
    (
        "drain idle within dom0's polling interval",
        BASE + "dom0: {cpe_poll_max_s: 20}\ndrain_idle_s: 10\n",
        "drain_idle_s: 10 s is not longer than the longest polling interval "
        "(dom0 cpe_poll_max_s 20 s): records waiting for a poll would be called stranded",
    ),
    (
        "burst count zero",
        BASE + "workload: {bursts: [{type: cmc, pcpus: all, count: 0, at_s: 1}]}",
        "workload.bursts[0].count: 0 is less than the minimum of 1",
    ),
    (
        "burst count too large",
        BASE + "workload: {bursts: [{type: cmc, pcpus: all, count: 1000001, at_s: 1}]}",
        "workload.bursts[0].count: 1000001 is greater than the maximum of 1000000",
    ),
    (
        "burst at the end",
        BASE + "workload: {bursts: [{type: cmc, pcpus: all, count: 10, at_s: 10}]}",
        "workload.bursts[0].at_s: 10 s is not before the end of the workload (duration_s 10)",
    ),
    (
        "burst before the start",
        BASE + "workload: {bursts: [{type: cmc, pcpus: all, count: 10, at_s: -1}]}",
        "workload.bursts[0].at_s: -1 is less than the minimum of 0",
    ),
    (
        "burst without a time",
        BASE + "workload: {bursts: [{type: cmc, pcpus: all, count: 10}]}",
        "workload.bursts[0].at_s: is required",
    ),
    (
        "burst without a count",
        BASE + "workload: {bursts: [{type: cmc, pcpus: all, at_s: 1}]}",
        "workload.bursts[0].count: is required",
    ),
    (
        "burst on a missing pCPU",
        BASE + "workload: {bursts: [{type: cmc, pcpus: [7], count: 10, at_s: 1}]}",
        "workload.bursts[0].pcpus: pCPU 7 does not exist (pcpus is 4: 0-3)",
    ),
    (
        "burst with a rate",
        BASE + "workload: {bursts: [{type: cmc, pcpus: all, count: 10, at_s: 1, rate: 5}]}",
        "workload.bursts[0].rate: unknown field (allowed: at_s, count, pcpus, severity, type)",
    ),
    (
        "burst with a severity mix",
        BASE
        + "workload: {bursts: [{type: cmc, pcpus: 0, count: 1, at_s: 1, "
        + "severity: {fatal: 1}}]}",
        'workload.bursts[0].severity: {"fatal": 1} is a mapping, expected a string',
    ),
    (
        "absurd burst in all",
        BASE.replace("pcpus: 4", "pcpus: 64")
        + "workload: {bursts: [{type: cmc, pcpus: all, count: 500000, at_s: 1}]}",
        "workload.bursts[0].pcpus: 500,000 records on each of 64 pCPUs is 32,000,000; "
        "at most 10,000,000",
    ),
    (
        "bursts count in the workload total",
        BASE
        + "workload:\n  bursts:\n"
        + "    - {type: cmc, pcpus: all, count: 1000000, at_s: 1}\n"
        + "    - {type: cpe, pcpus: all, count: 1000000, at_s: 1}\n"
        + "    - {type: mca, pcpus: all, count: 1000000, at_s: 1}\n",
        "workload: asks for about 12,000,000 records in all; at most 10,000,000",
    ),
    (
        "negative stranded bound",
        BASE + "checks: {stranded: -1}\n",
        "checks.stranded: -1 is less than the minimum of 0",
    ),
    (
        "fractional stranded bound",
        BASE + "checks: {stranded: 1.5}\n",
        "checks.stranded: 1.5 is a number, expected an integer",
    ),
    (
        "fairness of the wrong form",
        BASE + "checks: {fairness: maybe}\n",
        "checks.fairness: 'maybe' is not valid here; expected true, false or a mapping "
        "{max_overtaken: N}",
    ),
    (
        "fairness with a misspelt bound",
        BASE + "checks: {fairness: {max_overtake: 1}}\n",
        'checks.fairness: {"max_overtake": 1} is not valid here; expected true, false or a '
        "mapping {max_overtaken: N}",
    ),
    (
        "fairness without its bound",
        BASE + "checks: {fairness: {}}\n",
        "checks.fairness.max_overtaken: is required",
    ),
    (
        "negative fairness bound",
        BASE + "checks: {fairness: {max_overtaken: -1}}\n",
        "checks.fairness.max_overtaken: -1 is less than the minimum of 0",
    ),
    (
        "isolation not a boolean",
        BASE + "checks: {isolation: 1}\n",
        "checks.isolation: 1 is an integer, expected a boolean",
    ),
    ("not a mapping", "- 1\n- 2\n", "expected a mapping of scenario fields, got a list"),
    ("empty file", "", "the file is empty; expected a scenario mapping"),
    (
        "section of the wrong shape",
        BASE + "workload: []\n",
        "workload: [] is a list, expected a mapping",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [(t, e) for _, t, e in BAD_FILES], ids=[c for c, _, _ in BAD_FILES]
)
def test_a_bad_file_gives_one_line_naming_file_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    monkeypatch.delenv(ALLOW_BROKEN_RULES_ENV, raising=False)
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message == f"{path}: {expected}"
    assert isinstance(caught.value, ValueError)


def test_the_error_names_the_file_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, BASE + "pcpus_per_host: 0\n", "demo.yaml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScenarioError) as caught:
        load_scenario("demo.yaml")
    assert str(caught.value) == "demo.yaml: pcpus_per_host: 0 is less than the minimum of 1"
    assert (caught.value.file, caught.value.field) == ("demo.yaml", "pcpus_per_host")


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path / "missing.yaml")
    assert (
        str(caught.value)
        == f"{tmp_path / 'missing.yaml'}: cannot read the file: No such file or directory"
    )
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(tmp_path)  # a directory


def test_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(path)


def test_huge_messages_are_cut_to_one_short_line() -> None:
    text = BASE + "workload: {streams: [{type: cmc, rate: 1, pcpus: {" + "a: 1, " * 200 + "}}]}"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario_text(text, "x.yaml")
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400


def test_yaml_floats_in_exponent_form_are_numbers() -> None:
    scenario = parse_scenario_text(
        BASE + "workload: {storms: [{type: cmc, rate: 2e3, pcpus: all, duration_s: 1}]}"
    )
    assert scenario.storms[0].rate == 2000.0


def test_the_schema_file_is_json_beside_the_loader() -> None:
    assert SCHEMA_PATH.name == "schema.json"
    assert json.loads(SCHEMA_PATH.read_text())["title"] == "xenmca scenario"
    for name in builtin_names():
        data = yaml.safe_load(builtin_path(name).read_text())
        Draft202012Validator(schema()).validate(data)


def test_a_scenario_error_from_one_text_is_that_line() -> None:
    error = ScenarioError("x: no such file or built-in scenario")
    assert str(error) == "x: no such file or built-in scenario"
    assert str(ScenarioError("f.yaml", "", "empty")) == "f.yaml: empty"
    assert str(ScenarioError("f.yaml", "seed", "is\nrequired")) == "f.yaml: seed: is required"


DOCS = Path(__file__).resolve().parent.parent / "README.md"


def test_the_reference_documents_every_field_and_its_example_loads() -> None:
    text = DOCS.read_text().split("## Scenarios", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for _, node in _objects(schema()):
        names.update(node.get("properties", {}))
    assert [n for n in sorted(names) if f"`{n}`" not in text and f".{n}`" not in text] == []
    example = text.split("### Example\n\n```yaml\n", 1)[1].split("```", 1)[0]
    assert parse_scenario_text(example, "docs").name == "demo"
