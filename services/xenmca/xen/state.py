"""The state every part of the coordinator shares: queues, links, locks, the attached dom0.

The coordinator is composed of collaborators (delivery of virtual interrupts,
trapped calls, throttling, firmware access), each a strategy the policy
chose; they all act on this one object, so no part keeps a second copy of
another's state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.rpc.clock import Clock
from xenmca.rpc.events import EventLog
from xenmca.vocab import RECORD_TYPES
from xenmca.xen.counters import Counters
from xenmca.xen.dom0_session import Dom0Session
from xenmca.xen.links import PcpuLink
from xenmca.xen.model import CoordinatorConfig
from xenmca.xen.queues import Entry, TypeQueue


@dataclass
class CoordinatorState:
    config: CoordinatorConfig
    clock: Clock
    events: EventLog
    counters: Counters
    links: dict[int, PcpuLink]
    vcpu0_pcpu: int
    queues: dict[int, TypeQueue] = field(
        default_factory=lambda: {t: TypeQueue() for t in RECORD_TYPES}
    )
    # One trapped call of a queue at a time, as Xen's sal_queue_lock around each step.
    locks: dict[int, asyncio.Lock] = field(
        default_factory=lambda: {t: asyncio.Lock() for t in RECORD_TYPES}
    )
    max_record_size: dict[int, int] = field(default_factory=lambda: dict.fromkeys(RECORD_TYPES, 0))
    session: Dom0Session | None = None
    timers: set[asyncio.Task[None]] = field(default_factory=set)
    # While a CLEAR that asked for it releases its entry: where the next virtual
    # interrupt goes instead of the AttachDom0 stream (its reply's next_interrupt).
    carry: list[hv_pb2.AttachDom0Response] | None = None
    # Per type, the interrupt last carried on a CLEAR's reply and the entry it stands
    # for: a CLEAR repeated after that reply was lost gets it again.
    carried: dict[int, tuple[Entry, hv_pb2.AttachDom0Response]] = field(default_factory=dict)

    def carries_for(self, instance: str) -> bool:
        """Whether instance names the attached dom0 (a CLEAR may carry its next interrupt)."""
        return bool(instance) and self.session is not None and self.session.instance == instance

    def by_ipi(self, pcpu: int) -> bool:
        """A SAL call for pcpu's records is made by IPI unless vCPU0 runs on pcpu."""
        if self.config.broken_rule == "stale-placement":
            return pcpu != self.config.vcpu0_pcpu
        return pcpu != self.vcpu0_pcpu

    def available(self, pcpu: int) -> bool:
        link = self.links.get(pcpu)
        return link is not None and link.available()

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str | None = None) -> None:
        """A background task that the coordinator cancels when it stops."""
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self.timers.add(task)
        task.add_done_callback(self.timers.discard)
