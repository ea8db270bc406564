"""The Xen coordinator's state machine: the seed's flow, steps 1-5, and its invariants.

1. pCPU interrupts are queued per type, at most one entry per (pCPU, type).
2. One queued entry per type is injected into dom0 vCPU0 at a time.
3. dom0's trapped GET reads the in-flight entry's record on its pCPU, locally
   when vCPU0 runs there, by IPI otherwise.
4. dom0's trapped CLEAR clears exactly the record dom0 read (by record id).
5. The entry is freed (or sent to the tail if its pCPU has more records) and
   the next one is injected.
A failed call never drops an entry while its record is still in firmware.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.rpc.clock import Clock, MonotonicClock
from xenmca.rpc.events import EventLog
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.xen.counters import Counters
from xenmca.xen.dom0_session import Dom0Session
from xenmca.xen.line_poller import LinePoller
from xenmca.xen.links import PcpuLink
from xenmca.xen.model import (
    ALLOW_BROKEN_RULES_ENV as ALLOW_BROKEN_RULES_ENV,
)
from xenmca.xen.model import (
    BROKEN_RULES as BROKEN_RULES,
)
from xenmca.xen.model import (
    CMC,
    CPE,
    RECORD_TYPES,
    CoordinatorConfig,
    type_name,
)
from xenmca.xen.model import (
    SAL_NO_INFORMATION as SAL_NO_INFORMATION,
)
from xenmca.xen.pipeline import Pipeline
from xenmca.xen.queues import Entry, State, TypeQueue
from xenmca.xen.sal_calls import SalCaller
from xenmca.xen.throttle import Ia64Throttle, Mode
from xenmca.xen.trapped import TrappedCalls

log = logging.getLogger(__name__)


class Coordinator(TrappedCalls):
    """Queues, injection and trapped SAL calls. All methods run on one event loop."""

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
        self.config = config
        self.clock = clock or MonotonicClock()
        self.events = events or EventLog("xen")
        self.counters = Counters()
        self.vcpu0_pcpu = config.vcpu0_pcpu
        self.queues = {t: TypeQueue() for t in RECORD_TYPES}
        self.links = {
            pcpu: PcpuLink(
                pcpu,
                address,
                token=config.xen_token,
                clock=self.clock,
                credentials=config.channel_credentials,
            )
            for pcpu, address in sorted(config.pcpus.items())
        }
        self.max_record_size = dict.fromkeys(RECORD_TYPES, 0)
        self.session: Dom0Session | None = None
        self._locks = {t: asyncio.Lock() for t in RECORD_TYPES}
        self._injection_seq = 0
        self._timers: set[asyncio.Task[None]] = set()
        self.sal = SalCaller(config.retry, self.counters, self.events)
        self.pipeline = Pipeline() if config.pipelined else None
        self.poller = LinePoller(
            Ia64Throttle(config.throttle),
            self.links,
            clock=self.clock,
            events=self.events,
            counters=self.counters,
            queue_pending=self.queue_pending,
            type_name=type_name,
            cpe_type=CPE,
            call_timeout=config.retry.attempt_timeout,
        )

    # -- life -----------------------------------------------------------------

    async def start(self) -> None:
        for link in self.links.values():
            link.start(self.on_interrupt, self.on_pcpu_connected)
        if self.config.reinject_after > 0:
            watchdog = asyncio.create_task(self._watchdog(), name="reinject-watchdog")
            self._timers.add(watchdog)
        self.events.emit("coordinator_started", pcpus=len(self.links), vcpu0_pcpu=self.vcpu0_pcpu)

    async def stop(self) -> None:
        if self.session is not None:
            self.session.close()
        for timer in list(self._timers):
            timer.cancel()
        await self.poller.stop()
        if self.pipeline is not None:
            await self.pipeline.stop()
        await asyncio.gather(*(link.close() for link in self.links.values()))
        self.events.emit("coordinator_stopped")

    # -- step 1: interrupts -----------------------------------------------------

    def on_interrupt(self, pcpu: int, record_type: int, record_id: int) -> None:
        """An interrupt from a pCPU's line: queue (pCPU, type) unless it has an entry."""
        self.counters.interrupts += 1
        name = type_name(record_type)
        self.events.emit("interrupt_received", pcpu=pcpu, type=name, record_id=record_id)
        if record_type in (CMC, CPE):
            self.poller.on_interrupt(pcpu, record_type)
        queue = self.queues.get(record_type)
        if queue is not None and queue.add(pcpu) is not None:
            self.events.emit("entry_queued", pcpu=pcpu, type=name, record_id=record_id)
            self._pump(record_type)

    def queue_pending(self, pcpu: int, record_type: int, why: str) -> None:
        """A poll or a reconciliation found records pending: queue (pCPU, type) if needed."""
        if self.queues[record_type].add(pcpu) is not None:
            self.events.emit("entry_queued", pcpu=pcpu, type=type_name(record_type), why=why)
            self._pump(record_type)

    async def on_pcpu_connected(self, pcpu: int) -> None:
        """Reconcile after a (re)connection: queue every type with records pending."""
        link = self.links[pcpu]
        try:
            state = await link.stub.DescribePcpu(
                sal_pb2.DescribePcpuRequest(),
                timeout=self.config.retry.overall_timeout,
                metadata=link.metadata,
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("pCPU %d: reconciliation failed: %s", pcpu, exc.code())
            raise  # the link reconnects with backoff and reconciles again
        self.events.emit("pcpu_connected", pcpu=pcpu, connects=link.connects)
        for type_state in state.types:
            self.max_record_size[type_state.type] = max(
                self.max_record_size.get(type_state.type, 0), type_state.max_record_size
            )
            if type_state.type in (CMC, CPE):
                await self._align_mask(link, type_state.type, type_state.masked)
            if type_state.type in self.queues and type_state.pending > 0:
                self.queue_pending(pcpu, type_state.type, "reconcile")
        for record_type in (CMC, CPE):
            self.poller.on_connected(pcpu, record_type)
        self._pump_all()

    async def _align_mask(self, link: PcpuLink, record_type: int, masked: bool) -> None:
        """Make the pCPU's mask match this coordinator's view of the line.

        A line masked by an earlier coordinator (it was polling when it died)
        would otherwise never interrupt again; a pCPU restarted while its line
        was polling comes back unmasked.
        """
        line = self.poller.lines.get((link.pcpu, record_type))
        want = line is not None and line.policy.mode is Mode.POLLING
        if masked == want:
            return
        await link.stub.SetInterruptMask(
            sal_pb2.SetInterruptMaskRequest(type=record_type, masked=want),  # type: ignore[arg-type]
            timeout=self.config.retry.overall_timeout,
            metadata=link.metadata,
        )
        self.events.emit("mask_aligned", pcpu=link.pcpu, type=type_name(record_type), masked=want)

    # -- step 2: injection ------------------------------------------------------

    def _pump_all(self) -> None:
        for record_type in RECORD_TYPES:
            self._pump(record_type)

    def _available(self, pcpu: int) -> bool:
        link = self.links.get(pcpu)
        return link is not None and link.available()

    def _ready(self, record_type: int) -> Callable[[int], bool]:
        """Which pCPUs' entries of a type may go in flight now."""
        if self.pipeline is None:
            return self._available
        pipeline = self.pipeline
        return lambda pcpu: self._available(pcpu) and not pipeline.clearing((pcpu, record_type))

    def _read_ahead(self, pcpu: int, record_type: int) -> None:
        if self.pipeline is not None:
            link, by_ipi = self.links[pcpu], pcpu != self.vcpu0_pcpu
            self.pipeline.read_ahead(
                (pcpu, record_type), lambda: self.sal.get(link, record_type, by_ipi)
            )

    def _pump(self, record_type: int) -> None:
        """Inject the next entry of an injected type if none is in flight and dom0 listens."""
        if record_type not in self.config.injected_types or self.session is None:
            return
        queue = self.queues[record_type]
        if queue.in_flight is not None or self._locks[record_type].locked():
            return
        entry = queue.take_next(self._ready(record_type))
        if entry is None:
            return
        entry.state = State.INJECTED
        self._read_ahead(entry.pcpu, record_type)
        self._send_interrupt(record_type, entry)

    def _send_interrupt(self, record_type: int, entry: Entry, why: str = "queued") -> None:
        assert self.session is not None
        entry.touched = self.clock.now()
        self._injection_seq += 1
        self.counters.injections += 1
        self.session.inject(
            hv_pb2.AttachDom0Response(
                type=record_type,  # type: ignore[arg-type]
                injection_id=self._injection_seq,
                reinjected=entry.reinjected,
            )
        )
        self.events.emit(
            "injected",
            pcpu=entry.pcpu,
            type=type_name(record_type),
            injection_id=self._injection_seq,
            reinjected=entry.reinjected,
            why=why,
        )
        entry.reinjected = False

    async def _watchdog(self) -> None:
        """Inject again an entry dom0 has made no progress on (its interrupt or reply was lost)."""
        limit = self.config.reinject_after
        while True:
            await self.clock.sleep(limit / 2)
            now = self.clock.now()
            for record_type in self.config.injected_types:
                entry = self.queues[record_type].in_flight
                if (
                    entry is None
                    or self.session is None
                    or self._locks[record_type].locked()
                    or now - entry.touched < limit
                ):
                    continue
                entry.reinjected = True
                self._send_interrupt(record_type, entry, why="no progress")

    # -- dom0 attach / detach ---------------------------------------------------

    async def attach(self, instance: str) -> Dom0Session:
        """A dom0 attaches; any previous one is replaced and its entries re-injected."""
        previous = self.session
        session = Dom0Session(instance)
        self.session = session
        if previous is not None:
            previous.close()
        if previous is not None:
            # The entries the replaced dom0 held are delivered again to this one.
            await self._take_back_in_flight(why="replaced")
        self.events.emit("dom0_attached", instance=instance, replaced=previous is not None)
        self._pump_all()
        return session

    async def detach(self, session: Dom0Session) -> None:
        if self.session is not session:
            return
        self.session = None
        session.close()
        self.events.emit("dom0_detached", instance=session.instance)
        await self._take_back_in_flight(why="detach")

    async def _take_back_in_flight(self, why: str) -> None:
        for record_type, queue in self.queues.items():
            async with self._locks[record_type]:
                if queue.in_flight is None:
                    continue
                entry = queue.release_in_flight()
                queue.requeue_head(entry)
                entry.reinjected = True
                self.events.emit(
                    "entry_requeued",
                    pcpu=entry.pcpu,
                    type=type_name(record_type),
                    where="head",
                    why=why,
                )

    # -- the rest of HypervisorService ------------------------------------------

    def get_state_info_size(self, record_type: int) -> int:
        return self.max_record_size.get(record_type, 0)

    def throttle_lines(self) -> list[hv_pb2.ThrottleLine]:
        """Mode and interval of every pCPU's CMC and CPE line."""
        return self.poller.describe(list(self.links), (CMC, CPE))

    def set_vcpu_placement(self, pcpu: int) -> int:
        if pcpu not in self.links:
            raise KeyError(pcpu)
        previous, self.vcpu0_pcpu = self.vcpu0_pcpu, pcpu
        self.events.emit("vcpu_placement", previous=previous, pcpu=pcpu)
        return previous
