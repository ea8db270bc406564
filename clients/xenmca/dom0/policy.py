"""The contract between Dom0Logger and a dom0 policy: what a policy is given, and what it does.

Dom0Logger owns the plumbing (the channel, the AttachDom0 stream, one worker
per injected type, the CPE poll timer, start and stop); a policy owns what
dom0 does with a virtual interrupt or a poll tick: which trapped SAL calls it
makes, when it commits to the durable log, and when it clears. The policies
themselves are in ``xenmca.dom0.policies`` (their names) and
``xenmca.dom0.salinfo`` (``linux-salinfo``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from xenmca.dom0.handler import CommitObserver, Dom0Counters, DrainResult
from xenmca.dom0.log_health import LogHealth
from xenmca.dom0.log_store import LogStore
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
from xenmca.rpc.clock import Clock
from xenmca.rpc.events import EventLog


@dataclass
class Dom0Context:
    """What the logger hands a policy when it starts: its connection, log, events and clock."""

    stub: hv_grpc.HypervisorServiceStub
    store: LogStore
    events: EventLog
    counters: Dom0Counters
    clock: Clock
    stopping: asyncio.Event
    """Set when the logger stops; background work ends at its next safe point."""
    log_health: LogHealth
    """Whether the log takes commits; a pass that may commit runs in its ``attempt()``."""
    metadata: tuple[tuple[str, str], ...] = ()
    call_timeout: float = 10.0
    commit_observer: CommitObserver | None = None
    instance: str = ""
    """The name this dom0 attached as; a CLEAR that names it gets the next virtual
    interrupt on its reply (ClearStateInfoRequest.carry_interrupt_for)."""
    carried: Callable[[hv_pb2.AttachDom0Response], None] | None = None
    """Takes a virtual interrupt that came on a CLEAR's reply, as one from the stream;
    None: every interrupt comes on the stream."""
    _locks: dict[int, asyncio.Lock] = field(default_factory=dict, init=False, repr=False)

    def vcpu_lock(self, record_type: int) -> asyncio.Lock:
        """Held while vCPU0 handles one record type: one handler of a type runs at a time."""
        return self._locks.setdefault(record_type, asyncio.Lock())


class Dom0Policy(Protocol):
    """What dom0 does with each virtual interrupt and each poll tick."""

    @property
    def name(self) -> str:
        """The policy's name, as ``xenmca dom0 --policy`` spells it."""
        ...

    def start(self, context: Dom0Context) -> None:
        """Bind to a started logger (called once, before any interrupt or poll)."""
        ...

    async def on_interrupt(self, record_type: int) -> None:
        """Handle one virtual interrupt of record_type (the logger serialises them per type)."""
        ...

    async def on_poll(self, record_type: int) -> DrainResult:
        """One poll tick of a polled type; ``found`` drives ia64's halve/double interval."""
        ...

    @property
    def tasks(self) -> Sequence[asyncio.Task[None]]:
        """Background tasks the logger waits for (up to its grace) and then cancels at stop."""
        ...
