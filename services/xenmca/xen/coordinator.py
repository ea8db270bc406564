"""The Xen coordinator: the seed's flow, steps 1-5, composed of the policy's strategies.

1. pCPU interrupts are queued (`Enqueuer`: which queue, what an entry stands for).
2. dom0 vCPU0 learns of them (`Delivery`: one tracked interrupt in flight per
   type, or Xen/ia64's coalescing VIRQ bit).
3. dom0's trapped GET reads an entry's record on its pCPU, locally when vCPU0
   runs there, by IPI otherwise (`TrappedCalls`, `FirmwareAccess`).
4. dom0's trapped CLEAR clears a record (the one dom0 read, by id, or the
   queue head's current one, as shipped).
5. The entry is placed (tail, head, or freed) and the next one delivered.
Storms are throttled per line or globally (`ThrottleScope`). With the default
policy (``xenmca``) a failed call never drops an entry while its record is
still in firmware; the shipped policies replay what Xen/ia64 did instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import grpc

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.rpc.clock import Clock, MonotonicClock
from xenmca.rpc.events import EventLog
from xenmca.vocab import RECORD_TYPES, RecordType, type_name
from xenmca.xen.cascade_poller import CascadePoller
from xenmca.xen.counters import Counters
from xenmca.xen.delivery import Delivery, TrackedDelivery, VirqBitDelivery
from xenmca.xen.dom0_session import Dom0Session
from xenmca.xen.entries import Enqueuer
from xenmca.xen.firmware import FirmwareAccess, firmware_access
from xenmca.xen.line_poller import LinePoller
from xenmca.xen.links import PcpuLink
from xenmca.xen.model import BROKEN_RULES, CoordinatorConfig
from xenmca.xen.pipeline import Pipeline
from xenmca.xen.queues import Entry, TypeQueue
from xenmca.xen.sal_calls import SalCaller
from xenmca.xen.state import CoordinatorState
from xenmca.xen.strategies import Strategies, build_strategies
from xenmca.xen.throttle import Mode, StormRule
from xenmca.xen.throttle_scope import ScopeContext, ThrottleScope
from xenmca.xen.trapped import TrappedCalls

__all__ = ["BROKEN_RULES", "Coordinator", "CoordinatorConfig"]

log = logging.getLogger(__name__)

PIPELINE_NEEDS = {
    "delivery": "tracked",
    "clear_target": "read-record",
    "after_clear": "tail-if-more",
    "clear_failure": "keep",
}
"""Pipelined mode reads ahead the entry the next virtual interrupt stands for and answers a
CLEAR by record id before it lands: it needs these choices."""


def pipeline_conflict(choices: dict[str, str], label: str) -> str | None:
    """Why a policy cannot run pipelined (one line), or None when it can."""
    wrong = {k: v for k, v in PIPELINE_NEEDS.items() if choices[k] != v}
    if not wrong:
        return None
    return (
        "pipelined mode needs "
        + ", ".join(f"{k}={v}" for k, v in PIPELINE_NEEDS.items())
        + f" (policy {label} has "
        + ", ".join(f"{k}={choices[k]}" for k in wrong)
        + ")"
    )


class Coordinator:
    """Queues, delivery and trapped SAL calls. All methods run on one event loop."""

    def __init__(
        self,
        config: CoordinatorConfig,
        *,
        events: EventLog | None = None,
        clock: Clock | None = None,
    ) -> None:
        if config.vcpu0_pcpu not in config.pcpus:
            raise ValueError(f"vCPU0 placement {config.vcpu0_pcpu} is not a known pCPU")
        if config.broken_rule is not None and config.broken_rule not in BROKEN_RULES:
            raise ValueError(f"unknown broken rule {config.broken_rule!r}")
        self.strategies: Strategies = build_strategies(config.policy)
        if config.pipelined:
            conflict = pipeline_conflict(self.strategies.choices, config.policy.label)
            if conflict is not None:
                raise ValueError(conflict)
        self.config = config
        self.clock = clock or MonotonicClock()
        self.events = events or EventLog("xen")
        self.counters = Counters()
        links = {
            pcpu: PcpuLink(
                pcpu,
                address,
                token=config.xen_token,
                clock=self.clock,
                credentials=config.channel_credentials,
            )
            for pcpu, address in sorted(config.pcpus.items())
        }
        self.state = CoordinatorState(
            config, self.clock, self.events, self.counters, links, config.vcpu0_pcpu
        )
        self.sal = SalCaller(
            self.strategies.retry(config.retry), self.counters, self.events, self.clock
        )
        self.firmware: FirmwareAccess = firmware_access(config.sal_mode, self.sal)
        self.pipeline = Pipeline() if config.pipelined else None
        self.enqueuer = Enqueuer(self.strategies.routing, self.strategies.keying, self.queues)
        self.delivery: Delivery = (
            TrackedDelivery(self.state, self._ready, self._injected)
            if self.strategies.delivery == "tracked"
            else VirqBitDelivery(self.state)
        )
        self.trapped = TrappedCalls(
            self.state,
            self.firmware,
            self.delivery,
            self.strategies.rules,
            self.pipeline,
            self._ready,
        )
        context = ScopeContext(
            state=self.state,
            throttle=StormRule(config.throttle),
            firmware=self.firmware,
            poll_count=self.strategies.poll_count,
            enqueue_found=self.enqueue_found,
            cpe_type=RecordType.CPE,
            call_timeout=config.retry.attempt_timeout,
        )
        self.poller: ThrottleScope = (
            LinePoller(context)
            if self.strategies.storm_scope == "per-line"
            else CascadePoller(context)
        )

    # -- what the collaborators share -------------------------------------------

    @property
    def queues(self) -> dict[int, TypeQueue]:
        return self.state.queues

    @property
    def links(self) -> dict[int, PcpuLink]:
        return self.state.links

    @property
    def session(self) -> Dom0Session | None:
        return self.state.session

    @contextmanager
    def trapped_call(self) -> Iterator[None]:
        """Around one trapped SAL call of dom0: its virtual interrupts wait for the reply
        (Dom0Session.held)."""
        session = self.state.session
        if session is None:
            yield
            return
        with session.held():
            yield

    @property
    def vcpu0_pcpu(self) -> int:
        return self.state.vcpu0_pcpu

    @property
    def max_record_size(self) -> dict[int, int]:
        return self.state.max_record_size

    # -- life -----------------------------------------------------------------

    async def start(self) -> None:
        for link in self.links.values():
            link.start(self.on_interrupt, self.on_pcpu_connected)
        self.delivery.start()
        self.events.emit(
            "coordinator_started",
            pcpus=len(self.links),
            vcpu0_pcpu=self.vcpu0_pcpu,
            policy=self.config.policy.label,
            sal=self.config.sal_mode,
        )

    async def stop(self) -> None:
        if self.session is not None:
            self.session.close()
        for timer in list(self.state.timers):
            timer.cancel()
        await self.poller.stop()
        if self.pipeline is not None:
            await self.pipeline.stop()
        await asyncio.gather(*(link.close() for link in self.links.values()))
        self.events.emit("coordinator_stopped")

    # -- step 1: interrupts -----------------------------------------------------

    def on_interrupt(self, pcpu: int, record_type: int, record_id: int) -> None:
        """An interrupt from a pCPU's line: feed its storm rule, queue it, tell dom0."""
        self.counters.interrupts += 1
        self.events.emit(
            "interrupt_received", pcpu=pcpu, type=type_name(record_type), record_id=record_id
        )
        if record_type in (RecordType.CMC, RecordType.CPE):
            self.poller.on_interrupt(pcpu, record_type)
        enqueued = self.enqueuer.enqueue(pcpu, record_type)
        if enqueued.entry is not None:
            self._queued_event(enqueued.queue_type, enqueued.entry, record_id=record_id)
        self.delivery.on_interrupt(enqueued.queue_type)

    def enqueue_found(self, pcpu: int, record_type: int, why: str) -> None:
        """A poll or a reconciliation found records pending: queue (pCPU, type) if needed."""
        enqueued = self.enqueuer.enqueue(pcpu, record_type)
        if enqueued.entry is not None:
            self._queued_event(enqueued.queue_type, enqueued.entry, why=why)
            self.delivery.on_found(enqueued.queue_type)

    def _queued_event(self, queue_type: int, entry: Entry, **fields: object) -> None:
        extra = {} if entry.sal_type == queue_type else {"record_type": type_name(entry.sal_type)}
        self.events.emit(
            "entry_queued", pcpu=entry.pcpu, type=type_name(queue_type), **extra, **fields
        )

    async def on_pcpu_connected(self, pcpu: int) -> None:
        """Reconcile after a (re)connection: queue every type with records pending."""
        link = self.links[pcpu]
        try:
            views = await self.firmware.view(link, RECORD_TYPES, self.config.retry.overall_timeout)
        except grpc.aio.AioRpcError as exc:
            log.warning("pCPU %d: reconciliation failed: %s", pcpu, exc.code())
            raise  # the link reconnects with backoff and reconciles again
        self.events.emit("pcpu_connected", pcpu=pcpu, connects=link.connects)
        for view in views:
            self.max_record_size[view.record_type] = max(
                self.max_record_size.get(view.record_type, 0), view.max_record_size
            )
            if view.record_type in (RecordType.CMC, RecordType.CPE):
                await self._align_mask(link, view.record_type, view.masked)
            if view.head_id:
                self.enqueue_found(pcpu, view.record_type, "reconcile")
        for record_type in (RecordType.CMC, RecordType.CPE):
            self.poller.on_connected(pcpu, record_type)
        self.delivery.wake()

    async def _align_mask(self, link: PcpuLink, record_type: int, masked: bool | None) -> None:
        """Make the pCPU's mask match this coordinator's view of the line.

        A line masked by an earlier coordinator (it was polling when it died)
        would otherwise never interrupt again; a pCPU restarted while its line
        was polling comes back unmasked. Plain firmware does not say whether a
        line is masked, so the mask is written either way (as an OS writes CMCV).
        """
        want = self.poller.mode(link.pcpu, record_type) is Mode.POLLING
        if masked == want:
            return
        await self.firmware.set_mask(link, record_type, want, self.config.retry.overall_timeout)
        self.events.emit("mask_aligned", pcpu=link.pcpu, type=type_name(record_type), masked=want)

    # -- step 2: delivery -------------------------------------------------------

    def _ready(self, queue_type: int) -> Callable[[int], bool]:
        """Which pCPUs' entries of a queue may go in flight now."""
        if self.pipeline is None:
            return self.state.available
        pipeline = self.pipeline
        return lambda pcpu: self.state.available(pcpu) and not pipeline.clearing((pcpu, queue_type))

    def _injected(self, entry: Entry, queue_type: int) -> None:
        self.trapped.read_ahead(entry, queue_type)

    # -- dom0 attach / detach ---------------------------------------------------

    async def attach(self, instance: str) -> Dom0Session:
        """A dom0 attaches; any previous one is replaced (its entries go to this one)."""
        previous = self.session
        session = Dom0Session(instance)
        self.state.session = session
        if previous is not None:
            previous.close()
        await self.delivery.on_attach(replaced=previous is not None)
        self.events.emit("dom0_attached", instance=instance, replaced=previous is not None)
        return session

    async def detach(self, session: Dom0Session) -> None:
        if self.session is not session:
            return
        self.state.session = None
        session.close()
        self.events.emit("dom0_detached", instance=session.instance)
        await self.delivery.on_detach()

    # -- the trapped calls --------------------------------------------------------

    async def get_state_info(self, record_type: int) -> hv_pb2.GetStateInfoResponse:
        return await self.trapped.get_state_info(record_type)

    async def clear_state_info(
        self, record_type: int, record_id: int | None, pcpu: int | None = None, carry_for: str = ""
    ) -> hv_pb2.ClearStateInfoResponse:
        return await self.trapped.clear_state_info(record_type, record_id, pcpu, carry_for)

    # -- the rest of HypervisorService ------------------------------------------

    def get_state_info_size(self, record_type: int) -> int:
        return self.max_record_size.get(record_type, 0)

    def throttle_lines(self) -> list[hv_pb2.ThrottleLine]:
        """Mode and interval of every pCPU's CMC and CPE line."""
        return self.poller.describe(list(self.links), (RecordType.CMC, RecordType.CPE))

    def set_vcpu_placement(self, pcpu: int) -> int:
        if pcpu not in self.links:
            raise KeyError(pcpu)
        previous, self.state.vcpu0_pcpu = self.vcpu0_pcpu, pcpu
        self.events.emit("vcpu_placement", previous=previous, pcpu=pcpu)
        return previous
