"""Running a scenario under other policies than its file names: `xenmca run --policy ...`, hazards.

A scenario file says which coordinator and dom0 it runs; the same workload
and faults under another policy is how a hazard is shown caught and held.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping

from xenmca.dom0.policies import POLICY_NAMES as DOM0_POLICIES
from xenmca.testbed.scenario.model import Policy, Scenario
from xenmca.xen.policy import POLICIES, SAL_MODES, PolicyError, PolicySpec, parse_option

LINUX_SALINFO = "linux-salinfo"


@dataclasses.dataclass(frozen=True)
class PolicyOverride:
    """What to change of a scenario's policy; None keeps the file's."""

    xen: str | None = None
    dom0: str | None = None
    options: Mapping[str, str] | None = None
    sal: str | None = None
    salinfo_decode_delay_s: float | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in dataclasses.fields(self))


def apply_override(scenario: Scenario, override: PolicyOverride) -> Scenario:
    """The scenario with override applied; PolicyError (one line) when it does not fit."""
    xen = override.xen if override.xen is not None else scenario.policy.xen
    if xen not in POLICIES:
        raise PolicyError(f"unknown policy {xen!r} (known: {', '.join(POLICIES)})")
    if override.options is not None:
        options = dict(override.options)
    elif xen != scenario.policy.xen:
        options = {}  # the file's overrides were of its own policy
    else:
        options = dict(scenario.policy.options)
    PolicySpec(xen, options).choices()
    dom0 = override.dom0 if override.dom0 is not None else scenario.policy.dom0
    if dom0 not in DOM0_POLICIES:
        raise PolicyError(f"unknown dom0 policy {dom0!r} (known: {', '.join(DOM0_POLICIES)})")
    sal = override.sal if override.sal is not None else scenario.sal
    if sal not in SAL_MODES:
        raise PolicyError(f"unknown SAL mode {sal!r} (known: {', '.join(SAL_MODES)})")
    delay = override.salinfo_decode_delay_s
    if delay is None and dom0 == scenario.policy.dom0:
        delay = scenario.salinfo_decode_delay_s
    if delay is not None and dom0 != LINUX_SALINFO:
        raise PolicyError(f"a salinfo decode delay applies only to dom0 policy {LINUX_SALINFO}")
    return dataclasses.replace(
        scenario,
        policy=Policy(xen=xen, dom0=dom0, options=options),
        sal=sal,
        salinfo_decode_delay_s=delay,
    )


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("policies (override the scenario's)")
    group.add_argument("--policy", help=f"the coordinator's: {', '.join(POLICIES)}")
    group.add_argument(
        "--policy-option",
        action="append",
        metavar="KNOB=CHOICE",
        help="override one choice of the coordinator's policy (repeatable)",
    )
    group.add_argument("--dom0-policy", help=f"dom0's: {', '.join(DOM0_POLICIES)}")
    group.add_argument("--sal", help=f"the pCPUs' firmware: {', '.join(SAL_MODES)}")


def override_from_args(args: argparse.Namespace) -> PolicyOverride:
    """PolicyError (one line) for a malformed --policy-option."""
    options = None
    if args.policy_option:
        options = dict(parse_option(text) for text in args.policy_option)
    return PolicyOverride(xen=args.policy, dom0=args.dom0_policy, options=options, sal=args.sal)
