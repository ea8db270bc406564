"""What a scenario's `faults[]` entry may say: its kind, target and parameters, checked
against the scenario's pCPUs, hosts and network (what each kind does: run.fault_schedule).
"""

from __future__ import annotations

import re
from typing import Any

from xenmca.testbed.infra.fault_client import rule_from_dict
from xenmca.testbed.scenario.model import Fault

KINDS = ("kill", "pause", "rpc", "partition")
_TARGET = re.compile(r"^(xen|dom0|pcpu-host:(\d+)|pcpu:(\d+))$")


class FaultSpecError(ValueError):
    """A fault that cannot be applied; `field` names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _number(params: dict[str, Any], key: str, *, required: bool, default: float | None) -> None:
    value = params.get(key, default)
    if value is None:
        if required:
            raise FaultSpecError(key, "is required")
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 86_400:
        raise FaultSpecError(key, f"must be a number of seconds from 0 to 86400 (got {value!r})")


def validate_fault(fault: Fault, pcpus: int, pcpus_per_host: int, network: str) -> None:
    """Raise FaultSpecError naming the field when the fault cannot be applied."""
    if fault.kind not in KINDS:
        raise FaultSpecError(
            "kind", f"unknown fault kind {fault.kind!r} (known: {', '.join(KINDS)})"
        )
    match = _TARGET.match(fault.target)
    if match is None:
        raise FaultSpecError("target", "must be xen, dom0, pcpu-host:K or pcpu:N")
    hosts = -(-pcpus // pcpus_per_host)
    if match.group(2) is not None and int(match.group(2)) >= hosts:
        raise FaultSpecError("target", f"there are {hosts} pCPU hosts (0-{hosts - 1})")
    if match.group(3) is not None and int(match.group(3)) >= pcpus:
        raise FaultSpecError("target", f"pCPU {match.group(3)} does not exist (pcpus is {pcpus})")
    params = dict(fault.params)
    allowed = {
        "kill": {"restart_after_s"},
        "pause": {"duration_s"},
        "partition": {"duration_s"},
        "rpc": {"method", "action", "pcpu", "delay", "count", "skip", "duration"},
    }[fault.kind]
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise FaultSpecError(
            unknown[0],
            f"unknown parameter for a {fault.kind} fault (allowed: {', '.join(sorted(allowed))})",
        )
    if fault.kind == "kill":
        _number(params, "restart_after_s", required=False, default=1.0)
    elif fault.kind in ("pause", "partition"):
        _number(params, "duration_s", required=True, default=None)
        if fault.kind == "partition" and network != "netns":
            raise FaultSpecError("kind", "a partition needs network: netns (run as root)")
    else:
        if fault.target == "dom0":
            raise FaultSpecError("target", "dom0 serves no RPCs; put rpc faults on xen or pCPUs")
        try:
            rule_from_dict(params)
        except ValueError as exc:
            raise FaultSpecError("method" if "method" in str(exc) else "action", str(exc)) from None
