"""Scenario files: every bad file gives one clear line naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from scenario_helpers import BASE, write

from xenmca.testbed.scenario.errors import ScenarioError
from xenmca.testbed.scenario.loader import load_scenario
from xenmca.vocab import ALLOW_BROKEN_RULES_ENV

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
