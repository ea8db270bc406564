"""From schema-valid scenario data to a `Scenario`: the checks a schema cannot make (fields
that depend on each other, on the pCPU count or on the workload's length).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xenmca.testbed.scenario.errors import ScenarioError, field_path, number_text
from xenmca.testbed.scenario.fault_spec import FaultSpecError, validate_fault
from xenmca.testbed.scenario.model import (
    Checks,
    ExpectedTransition,
    Fault,
    Policy,
    Scenario,
    Throttle,
    Vcpu0Move,
)
from xenmca.testbed.scenario.workload_fields import WorkloadFields
from xenmca.vocab import ALLOW_BROKEN_RULES_ENV

DEFAULT_DRAIN_IDLE_S = 10.0
"""drain_idle_s when absent, unless twice the longest polling interval is longer."""
FAULT_KEYS = ("at_s", "kind", "target")


class ScenarioBuilder:
    """Semantic checks of schema-valid data, and conversion to the dataclasses."""

    def __init__(self, data: Mapping[str, Any], file: str, base_dir: Path | None = None) -> None:
        self.data = data
        self.file = file
        self.base_dir = base_dir
        self.pcpus = int(data["pcpus"])
        self.duration = float(data["duration_s"])

    def fail(self, path: Sequence[str | int], message: str) -> ScenarioError:
        return ScenarioError(self.file, field_path(path), message)

    def build(self) -> Scenario:
        data = self.data
        vcpu0 = int(data.get("vcpu0_pcpu", 0))
        if vcpu0 >= self.pcpus:
            raise self.fail(
                ["vcpu0_pcpu"],
                f"pCPU {vcpu0} does not exist (pcpus is {self.pcpus}: 0-{self.pcpus - 1})",
            )
        dom0 = data.get("dom0", {})
        poll_min = float(dom0.get("cpe_poll_min_s", 0.05))
        poll_max = float(dom0.get("cpe_poll_max_s", 0.5))
        if poll_min > poll_max:
            raise self.fail(
                ["dom0", "cpe_poll_min_s"],
                f"{number_text(poll_min)} is more than cpe_poll_max_s ({number_text(poll_max)})",
            )
        fields = WorkloadFields(self.file, self.pcpus, self.duration, self.base_dir)
        streams, storms, bursts, records = fields.build(data.get("workload", {}))
        drain = float(data.get("drain_timeout_s", 60.0))
        throttle = self.throttle(data.get("throttle", {}))
        policy = self.policy(data.get("policy", {}))
        return Scenario(
            name=data["name"],
            description=str(data.get("description", "")),
            seed=int(data["seed"]),
            pcpus=self.pcpus,
            duration_s=self.duration,
            vcpu0_pcpu=vcpu0,
            vcpu0_moves=self.vcpu0_moves(data.get("vcpu0_moves", [])),
            pcpus_per_host=int(data.get("pcpus_per_host", 64)),
            capacity=int(data.get("capacity", 256)),
            durable_pcpus=bool(data.get("durable_pcpus", True)),
            throttle=throttle,
            cpe_poll_min_s=poll_min,
            cpe_poll_max_s=poll_max,
            drain_timeout_s=drain,
            streams=streams,
            storms=storms,
            bursts=bursts,
            faults=tuple(self.fault(i, f) for i, f in enumerate(data.get("faults", []))),
            network=str(data.get("network", "loopback")),
            settle_timeout_s=float(data.get("settle_timeout_s", 10.0)),
            checks=self.checks(data.get("checks", {})),
            broken_rule=self.broken_rule(data.get("broken_rule")),
            policy=policy,
            sal=str(data.get("sal", "extended")),
            salinfo_decode_delay_s=self.salinfo_decode_delay(dom0, policy),
            drain_idle_s=self.drain_idle(data.get("drain_idle_s"), throttle, poll_max),
            records=records,
        )

    def vcpu0_moves(self, raw: Sequence[Mapping[str, Any]]) -> tuple[Vcpu0Move, ...]:
        moves = []
        for index, item in enumerate(raw):
            at, pcpu = float(item["at_s"]), int(item["pcpu"])
            if pcpu >= self.pcpus:
                raise self.fail(
                    ["vcpu0_moves", index, "pcpu"],
                    f"pCPU {pcpu} does not exist (pcpus is {self.pcpus}: 0-{self.pcpus - 1})",
                )
            if at >= self.duration:
                raise self.fail(
                    ["vcpu0_moves", index, "at_s"],
                    f"{number_text(at)} s is not within the workload "
                    f"(duration_s {number_text(self.duration)})",
                )
            moves.append(Vcpu0Move(at_s=at, pcpu=pcpu))
        return tuple(sorted(moves, key=lambda m: m.at_s))

    def policy(self, raw: Mapping[str, Any]) -> Policy:
        from xenmca.xen.policy import PolicyError, check_choice

        options: dict[str, str] = {}
        for knob, choice in raw.get("options", {}).items():
            try:
                check_choice(knob, choice)
            except PolicyError as exc:
                message = str(exc).removeprefix(f"{knob}: ")
                raise self.fail(["policy", "options", knob], message) from None
            options[knob] = choice
        return Policy(
            xen=str(raw.get("xen", "xenmca")), dom0=str(raw.get("dom0", "xenmca")), options=options
        )

    def salinfo_decode_delay(self, dom0: Mapping[str, Any], policy: Policy) -> float | None:
        delay = dom0.get("salinfo_decode_delay_s")
        if delay is None:
            return None
        if policy.dom0 != "linux-salinfo":
            raise self.fail(
                ["dom0", "salinfo_decode_delay_s"],
                f"applies only to policy.dom0 linux-salinfo (policy.dom0 is {policy.dom0})",
            )
        return float(delay)

    def drain_idle(self, raw: Any, throttle: Throttle, dom0_poll_max: float) -> float:
        """drain_idle_s, which must outlast every polling interval.

        A record waiting for the next poll changes no count, so a shorter idle
        window would call it stranded while it is merely waiting.
        """
        from xenmca.testbed.scenario.poll_intervals import longest_poll_interval

        name, longest = longest_poll_interval(throttle, dom0_poll_max)
        if raw is None:
            return max(DEFAULT_DRAIN_IDLE_S, 2 * longest)
        idle = float(raw)
        if idle <= longest:
            raise self.fail(
                ["drain_idle_s"],
                f"{number_text(idle)} s is not longer than the longest polling interval "
                f"({name} {number_text(longest)} s): records waiting for a poll would be "
                "called stranded",
            )
        return idle

    def throttle(self, raw: Mapping[str, Any]) -> Throttle:
        from xenmca.xen.throttle_settings import PRESETS, ThrottleSettingsError, load_settings

        preset = raw.get("preset", "fast")
        if preset not in PRESETS:
            raise self.fail(
                ["throttle", "preset"],
                f"unknown preset {preset!r} (known: {', '.join(PRESETS)})",
            )
        settings = dict(raw.get("settings", {}))
        try:
            load_settings(preset, None, settings)
        except ThrottleSettingsError as exc:
            message = str(exc)
            named = next((k for k in settings if message.startswith(k)), None)
            path = ["throttle", "settings", named] if named else ["throttle", "settings"]
            raise self.fail(path, message) from None
        return Throttle(preset=preset, settings=settings)

    def fault(self, index: int, raw: Mapping[str, Any]) -> Fault:
        at = float(raw["at_s"])
        if at >= self.duration:
            raise self.fail(
                ["faults", index, "at_s"],
                f"{number_text(at)} s is not within the workload "
                f"(duration_s {number_text(self.duration)}); "
                "faults still active when it ends are healed before the drain",
            )
        params = {k: v for k, v in raw.items() if k not in FAULT_KEYS}
        fault = Fault(at_s=at, kind=str(raw["kind"]), target=str(raw["target"]), params=params)
        try:
            validate_fault(
                fault,
                self.pcpus,
                int(self.data.get("pcpus_per_host", 64)),
                str(self.data.get("network", "loopback")),
            )
        except FaultSpecError as exc:
            raise self.fail(["faults", index, exc.field], str(exc)) from None
        return fault

    def checks(self, raw: Mapping[str, Any]) -> Checks:
        transitions = []
        for index, item in enumerate(raw.get("expect_transitions", [])):
            pcpu = int(item["pcpu"])
            if pcpu >= self.pcpus:
                raise self.fail(
                    ["checks", "expect_transitions", index, "pcpu"],
                    f"pCPU {pcpu} does not exist (pcpus is {self.pcpus}: 0-{self.pcpus - 1})",
                )
            transitions.append(ExpectedTransition(pcpu=pcpu, type=item["type"], mode=item["mode"]))
        p99 = raw.get("latency_p99_ms")
        latency_max = raw.get("latency_max_ms")
        for quantile in ("p99", "max"):
            given = [f"latency_{quantile}_{unit}" for unit in ("ms", "floors")]
            if all(raw.get(name) is not None for name in given):
                raise self.fail(
                    ["checks", given[1]],
                    f"give {given[0]} (absolute) or {given[1]} (relative to this machine), "
                    "not both",
                )
        fairness = raw.get("fairness", True)
        bound = int(fairness["max_overtaken"]) if isinstance(fairness, Mapping) else None
        return Checks(
            max_lost=int(raw.get("lost", 0)),
            max_duplicates=int(raw.get("duplicates", 0)),
            max_cleared_before_logged=int(raw.get("cleared_before_logged", 0)),
            latency_p99_ms=None if p99 is None else float(p99),
            latency_max_ms=None if latency_max is None else float(latency_max),
            latency_p99_floors=_optional_float(raw.get("latency_p99_floors")),
            latency_max_floors=_optional_float(raw.get("latency_max_floors")),
            expect_transitions=tuple(transitions),
            all_lines_back_to_interrupt=bool(raw.get("all_lines_back_to_interrupt", True)),
            max_stranded=int(raw.get("stranded", 0)),
            fairness=fairness is not False,
            max_overtaken=bound,
            isolation=bool(raw.get("isolation", True)),
            local_calls=bool(raw.get("local_calls", True)),
        )

    def broken_rule(self, rule: str | None) -> str | None:
        if rule is None:
            return None
        if os.environ.get(ALLOW_BROKEN_RULES_ENV) != "1":
            raise self.fail(
                ["broken_rule"],
                f"{rule!r} is a test-only setting; it is accepted only with "
                f"{ALLOW_BROKEN_RULES_ENV}=1 in the environment",
            )
        from xenmca.xen.coordinator import BROKEN_RULES

        if rule not in BROKEN_RULES:
            raise self.fail(
                ["broken_rule"], f"unknown rule {rule!r} (known: {', '.join(BROKEN_RULES)})"
            )
        return rule


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
