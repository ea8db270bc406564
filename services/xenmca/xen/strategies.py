"""From a policy's choices (xenmca.xen.policy) to the strategy objects the coordinator uses."""

from __future__ import annotations

from dataclasses import dataclass

from xenmca.rpc.retry import RetryPolicy
from xenmca.xen.entries import KEYINGS, ROUTINGS, Keying, Routing
from xenmca.xen.outcomes import AFTER_CLEAR, CLEAR_FAILURE, CLEAR_TARGETS, GET_FAILURE
from xenmca.xen.policy import PolicySpec
from xenmca.xen.poll_count import POLL_COUNTS, PollCount
from xenmca.xen.trapped import EntryRules


@dataclass(frozen=True)
class Strategies:
    """Every strategy of a policy, but the ones that need the coordinator's state to build."""

    spec: PolicySpec
    choices: dict[str, str]
    routing: Routing
    keying: Keying
    rules: EntryRules
    poll_count: PollCount

    @property
    def delivery(self) -> str:
        return self.choices["delivery"]

    @property
    def storm_scope(self) -> str:
        return self.choices["storm_scope"]

    def retry(self, configured: RetryPolicy) -> RetryPolicy:
        """The IPI retry policy: as configured, or one attempt (smp_call_function_single)."""
        if self.choices["ipi"] == "retry":
            return configured
        return RetryPolicy(
            attempt_timeout=configured.attempt_timeout,
            overall_timeout=configured.attempt_timeout,
            max_attempts=1,
        )


def build_strategies(spec: PolicySpec) -> Strategies:
    """PolicyError for an unknown policy, knob or choice."""
    choices = spec.choices()
    return Strategies(
        spec=spec,
        choices=choices,
        routing=ROUTINGS[choices["routing"]](),
        keying=KEYINGS[choices["entries"]](),
        rules=EntryRules(
            clear_target=CLEAR_TARGETS[choices["clear_target"]](),
            after_clear=AFTER_CLEAR[choices["after_clear"]](),
            clear_failure=CLEAR_FAILURE[choices["clear_failure"]](),
            get_failure=GET_FAILURE[choices["get_failure"]](),
        ),
        poll_count=POLL_COUNTS[choices["poll_count"]](),
    )
