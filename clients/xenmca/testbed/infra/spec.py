"""What a local testbed starts: the pCPUs and how they are split over hosts, the policies,
the network, TLS, metrics and agents (a `TestbedSpec`, read by `LocalTestbed`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from xenmca.testbed.infra.launcher_args import DEFAULT_DOM0_POLICY, DEFAULT_SAL_MODE
from xenmca.testbed.scenario.model import Scenario
from xenmca.xen.policy import DEFAULT_POLICY


@dataclass
class TestbedSpec:
    """What to start."""

    __test__ = False  # not a pytest test class

    workdir: Path
    pcpus: int = 8
    pcpus_per_host: int = 64
    vcpu0_pcpu: int = 0
    capacity: int = 256
    durable_pcpus: bool = True
    throttle_preset: str = "fast"
    throttle_overrides: dict[str, float | int | bool | str] = field(default_factory=dict)
    cpe_poll_min: float = 0.05
    cpe_poll_max: float = 0.5
    extra_xen_args: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    start_dom0: bool = True
    # "loopback": every component on 127.0.0.1; "netns": each in its own network
    # namespace (root only; NetnsUnavailable otherwise, never a silent fallback).
    network: str = "loopback"
    # Mutual TLS between every pair of components, with certificates made for this run.
    tls: bool = False
    # The coordinator's policy (xenmca.xen.policy.POLICIES) and knob overrides on top of it.
    xen_policy: str = DEFAULT_POLICY
    xen_policy_options: dict[str, str] = field(default_factory=dict)
    dom0_policy: str = DEFAULT_DOM0_POLICY
    # The pCPUs' firmware: "extended" (xenmca's SAL) or "plain" (real SAL only).
    sal_mode: str = DEFAULT_SAL_MODE
    # linux-salinfo's modelled user-space time per record, in seconds; None: dom0's default.
    salinfo_decode_delay: float | None = None
    # Every process serves Prometheus metrics on a port of its own (free at start).
    metrics: bool = False
    # Every component runs under its host's `xenmca agent` (infra.agents); target.json.
    agents: bool = False
    # Hosts (by name: pcpu-host0.., xen, dom0) whose monotonic and boot-time clocks run
    # ahead by this many whole seconds, each in a Linux time namespace (root only). Only with
    # agents: a runner driving the testbed from outside corrects for it; a local run
    # does not, so LocalTestbed refuses it otherwise.
    clock_skew_s: dict[str, int] = field(default_factory=dict)


def testbed_spec(scenario: Scenario, out_dir: Path, tls: bool = False) -> TestbedSpec:
    """The testbed a scenario runs on (metrics on), its results folder as the workdir."""
    spec = TestbedSpec(
        workdir=out_dir,
        pcpus=scenario.pcpus,
        pcpus_per_host=scenario.pcpus_per_host,
        vcpu0_pcpu=scenario.vcpu0_pcpu,
        capacity=scenario.capacity,
        durable_pcpus=scenario.durable_pcpus,
        throttle_preset=scenario.throttle.preset,
        throttle_overrides=dict(scenario.throttle.settings),  # type: ignore[arg-type]
        cpe_poll_min=scenario.cpe_poll_min_s,
        cpe_poll_max=scenario.cpe_poll_max_s,
        network=scenario.network,
        tls=tls,
        xen_policy=scenario.policy.xen,
        xen_policy_options=dict(scenario.policy.options),
        dom0_policy=scenario.policy.dom0,
        sal_mode=scenario.sal,
        salinfo_decode_delay=scenario.salinfo_decode_delay_s,
        metrics=True,
    )
    if scenario.broken_rule:
        spec.extra_xen_args = ["--broken-rule", scenario.broken_rule]
    return spec
