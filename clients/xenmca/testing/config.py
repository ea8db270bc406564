"""BedConfig: what a test's testbed is made of (pCPUs, vCPU0, policies, throttling, firmware).

The plugin's fixtures build everything from one BedConfig: the defaults, or the
keywords of the ``xenmca`` marker (``@pytest.mark.xenmca(pcpus=4, policy="xen-ia64-2009")``),
or a test module's own ``xenmca_config`` fixture. Throttling is a preset name plus
overrides of ThrottleSettings fields, as a scenario file says it, so that the
coordinator and the checkers read the same settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from xenmca.dom0.pacing import PollSettings
from xenmca.dom0.policies import POLICY_NAMES as DOM0_POLICIES
from xenmca.rpc.retry import RetryPolicy
from xenmca.testing.coordinator import FAST_RETRY
from xenmca.testing.dom0 import FAST_CPE_POLL
from xenmca.xen.policy import SAL_MODES, PolicySpec
from xenmca.xen.throttle_settings import ThrottleSettings, load_settings


@dataclass(frozen=True)
class BedConfig:
    """A testbed's make-up; ``check()`` names the first field that cannot be used."""

    pcpus: int = 2
    """pCPUs, numbered 0 to pcpus - 1, all in one pCPU host."""
    vcpu0_pcpu: int = 0
    """The pCPU dom0's vCPU0 runs on: its records are read locally, the others' by IPI."""
    policy: str = "xenmca"
    """The coordinator's policy: xenmca, xen-ia64-2006 or xen-ia64-2009."""
    policy_options: Mapping[str, str] = field(default_factory=dict)
    """Knobs of the policy overridden (``{"after_clear": "head"}``)."""
    throttle: str = "fast"
    """The throttle preset: ``fast`` (polls in fractions of a second) or ``linux-ia64``."""
    throttle_settings: Mapping[str, float | int | bool] = field(default_factory=dict)
    """ThrottleSettings fields overriding the preset's (``{"history_length": 3}``)."""
    sal_mode: str = "extended"
    """The pCPUs' firmware: ``extended`` (clear by id, counters) or ``plain`` SAL."""
    capacity: int | None = None
    """Records each pCPU's store keeps per type (None: the firmware's default, 256)."""
    dom0_policy: str = "xenmca"
    """dom0's policy: ``xenmca`` (commit, then CLEAR by id) or ``linux-salinfo``."""
    cpe_poll: PollSettings | None = FAST_CPE_POLL
    """dom0's CPE polling interval bounds; None: dom0 does not poll CPE."""
    pipelined: bool = False
    """The coordinator reads the next record ahead and answers CLEAR while it is on its way."""
    reinject_after: float = 5.0
    """Seconds without progress after which the coordinator injects an entry again."""
    retry: RetryPolicy = FAST_RETRY
    """How the coordinator retries its IPIs."""

    def check(self) -> BedConfig:
        """This config, or ValueError naming the field that cannot be used."""
        if self.pcpus < 1:
            raise ValueError(f"pcpus must be at least 1 (got {self.pcpus})")
        if not 0 <= self.vcpu0_pcpu < self.pcpus:
            raise ValueError(f"vcpu0_pcpu must be a pCPU, 0 to {self.pcpus - 1}")
        self.policy_spec().choices()
        self.throttle_values()
        if self.sal_mode not in SAL_MODES:
            raise ValueError(f"sal_mode must be one of {', '.join(SAL_MODES)}")
        if self.dom0_policy not in DOM0_POLICIES:
            raise ValueError(f"dom0_policy must be one of {', '.join(DOM0_POLICIES)}")
        if self.capacity is not None and self.capacity < 1:
            raise ValueError(f"capacity must be at least 1 (got {self.capacity})")
        return self

    def policy_spec(self) -> PolicySpec:
        return PolicySpec(self.policy, dict(self.policy_options))

    def throttle_values(self) -> ThrottleSettings:
        """The preset with the overrides, validated (ThrottleSettingsError names the field)."""
        return load_settings(self.throttle, None, dict(self.throttle_settings))

    def coordinator_options(self) -> dict[str, Any]:
        """The CoordinatorConfig fields this config sets (start_coordinator's keywords)."""
        return {
            "vcpu0_pcpu": self.vcpu0_pcpu,
            "policy": self.policy_spec(),
            "throttle": self.throttle_values(),
            "pipelined": self.pipelined,
            "reinject_after": self.reinject_after,
            "retry": self.retry,
        }

    def replace(self, **changes: Any) -> BedConfig:
        """A copy with some fields changed, checked."""
        return dataclasses.replace(self, **changes).check()


def config_from(keywords: Mapping[str, Any]) -> BedConfig:
    """A checked BedConfig from keywords (the ``xenmca`` marker's); ValueError names a bad one."""
    names = {f.name for f in dataclasses.fields(BedConfig)}
    unknown = sorted(set(keywords) - names)
    if unknown:
        raise ValueError(f"unknown setting {unknown[0]!r} (known: {', '.join(sorted(names))})")
    return BedConfig(**keywords).check()
