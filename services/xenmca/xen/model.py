"""The coordinator's settings and its test-only broken rules (the vocabulary is xenmca.vocab)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc

from xenmca.rpc.retry import RetryPolicy
from xenmca.vocab import RecordType
from xenmca.xen.policy import PolicySpec
from xenmca.xen.throttle_settings import ThrottleSettings


@dataclass
class CoordinatorConfig:
    """What the coordinator is told at start."""

    pcpus: Mapping[int, str]
    vcpu0_pcpu: int = 0
    # Types delivered by virtual interrupt; dom0 polls the others (CPE, as the thread settled).
    injected_types: frozenset[int] = frozenset({RecordType.MCA, RecordType.INIT, RecordType.CMC})
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    xen_token: str | None = None
    # Mutual TLS to the pCPUs (xenmca.rpc.tls.channel_credentials): the "xen" certificate.
    channel_credentials: grpc.ChannelCredentials | None = None
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    # Test-only deliberately broken rule (see BROKEN_RULES), so checkers are shown able to fail.
    broken_rule: str | None = None
    # Read ahead by IPI and answer CLEAR while it is on its way (see pipeline.py).
    pipelined: bool = False
    # An injected entry with no GET or CLEAR from dom0 for this long is injected again
    # (a lost virtual interrupt, a dom0 that lost a reply); 0 disables it.
    reinject_after: float = 5.0
    # Which coordinator: xenmca's design, or Xen/ia64 as shipped (xenmca.xen.policy).
    policy: PolicySpec = field(default_factory=PolicySpec)
    # The pCPUs' firmware: "extended" (clear by id, counters) or "plain" SAL.
    sal_mode: str = "extended"


BROKEN_RULES = {
    # Xen clears the record in firmware as soon as it has read it, before dom0 committed it.
    "clear-on-get": "CLEAR the record on the pCPU right after GET, before dom0 commits it",
    # Xen decides local or IPI from vCPU0's first placement, whatever SetVcpuPlacement said.
    "stale-placement": "make SAL calls local or by IPI as if vCPU0 never moved",
}
