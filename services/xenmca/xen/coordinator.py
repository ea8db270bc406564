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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import grpc

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.record.v1 import record_pb2
from xenmca.rpc.clock import Clock, MonotonicClock
from xenmca.rpc.events import EventLog
from xenmca.rpc.retry import RetryPolicy
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.xen.counters import Counters
from xenmca.xen.dom0_session import Dom0Session
from xenmca.xen.line_poller import LinePoller
from xenmca.xen.links import PcpuLink
from xenmca.xen.pipeline import GetResult, Pipeline
from xenmca.xen.queues import Entry, State, TypeQueue
from xenmca.xen.sal_calls import CallOutcome, SalCaller
from xenmca.xen.throttle import Ia64Throttle, Mode
from xenmca.xen.throttle_settings import ThrottleSettings

log = logging.getLogger(__name__)

SAL_OK = 0
SAL_CALL_ERROR = -3
SAL_NO_INFORMATION = -5

MCA: int = record_pb2.RECORD_TYPE_MCA
INIT: int = record_pb2.RECORD_TYPE_INIT
CMC: int = record_pb2.RECORD_TYPE_CMC
CPE: int = record_pb2.RECORD_TYPE_CPE
RECORD_TYPES: tuple[int, ...] = (MCA, INIT, CMC, CPE)


def type_name(record_type: int) -> str:
    return record_pb2.RecordType.Name(record_type).removeprefix("RECORD_TYPE_")  # type: ignore[arg-type]


@dataclass
class CoordinatorConfig:
    """What the coordinator is told at start."""

    pcpus: Mapping[int, str]
    vcpu0_pcpu: int = 0
    # Types delivered by virtual interrupt; dom0 polls the others (CPE, as the thread settled).
    injected_types: frozenset[int] = frozenset({MCA, INIT, CMC})
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    xen_token: str | None = None
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    # Test-only deliberately broken rule (see BROKEN_RULES), so checkers are shown able to fail.
    broken_rule: str | None = None
    # Read ahead by IPI and answer CLEAR while it is on its way (see pipeline.py).
    pipelined: bool = False


BROKEN_RULES = {
    # Xen clears the record in firmware as soon as it has read it, before dom0 committed it.
    "clear-on-get": "CLEAR the record on the pCPU right after GET, before dom0 commits it",
}
ALLOW_BROKEN_RULES_ENV = "XENMCA_ALLOW_BROKEN_RULES"


class Coordinator:
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
            pcpu: PcpuLink(pcpu, address, token=config.xen_token, clock=self.clock)
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
        )
        entry.reinjected = False

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

    # -- step 3: trapped GET ----------------------------------------------------

    async def get_state_info(self, record_type: int) -> hv_pb2.GetStateInfoResponse:
        queue = self.queues[record_type]
        async with self._locks[record_type]:
            entry = queue.in_flight
            if entry is None and record_type not in self.config.injected_types:
                entry = queue.take_next(self._ready(record_type))  # polled: head goes in flight
                if entry is not None:
                    entry.state = State.INJECTED
            if entry is None:
                return hv_pb2.GetStateInfoResponse(sal_status=SAL_NO_INFORMATION)
            link = self.links[entry.pcpu]
            by_ipi = entry.pcpu != self.vcpu0_pcpu
            reply, outcome, ahead = await self._read(entry.pcpu, record_type, by_ipi)
            name = type_name(record_type)
            self._emit_call("get", entry.pcpu, name, outcome, read_ahead=ahead)
            if reply is None:
                self._requeue_after_failure(record_type, entry, link)
                return hv_pb2.GetStateInfoResponse(sal_status=SAL_CALL_ERROR, by_ipi=by_ipi)
            link.release()
            if reply.sal_status != SAL_OK:
                # Firmware has nothing left for this entry (already drained): free it.
                queue.release_in_flight()
                self.events.emit("entry_freed", pcpu=entry.pcpu, type=name, why="empty")
                return hv_pb2.GetStateInfoResponse(sal_status=SAL_NO_INFORMATION, by_ipi=by_ipi)
            entry.state = State.READ
            entry.record_id = reply.record.record_id
            self.counters.records_copied += 1
            self.events.emit("record_copied", pcpu=entry.pcpu, type=name, record_id=entry.record_id)
            self._read_ahead_next(record_type, entry.pcpu)
            if self.config.broken_rule == "clear-on-get":
                await self.sal.clear(link, record_type, entry.record_id, by_ipi)
                self.events.emit(
                    "broken_rule_applied",
                    rule="clear-on-get",
                    pcpu=entry.pcpu,
                    type=name,
                    record_id=entry.record_id,
                )
            return hv_pb2.GetStateInfoResponse(
                sal_status=SAL_OK, record=reply.record, by_ipi=by_ipi
            )
        # (the lock is released here; an injected type's next entry waits for CLEAR)

    # -- step 4-5: trapped CLEAR ------------------------------------------------

    async def clear_state_info(
        self, record_type: int, record_id: int | None
    ) -> hv_pb2.ClearStateInfoResponse:
        queue = self.queues[record_type]
        name = type_name(record_type)
        async with self._locks[record_type]:
            entry = queue.in_flight
            if entry is None or entry.state is not State.READ:
                return hv_pb2.ClearStateInfoResponse(sal_status=SAL_NO_INFORMATION)
            if record_id is not None and record_id != entry.record_id:
                self.events.emit(
                    "clear_refused",
                    pcpu=entry.pcpu,
                    type=name,
                    record_id=record_id,
                    read_record_id=entry.record_id,
                )
                return hv_pb2.ClearStateInfoResponse(sal_status=SAL_NO_INFORMATION)
            link = self.links[entry.pcpu]
            by_ipi = entry.pcpu != self.vcpu0_pcpu
            cleared_id = entry.record_id
            if self.pipeline is not None:
                self._clear_in_background(record_type, entry, link, by_ipi)
            else:
                reply, outcome = await self.sal.clear(link, record_type, cleared_id, by_ipi)
                self._emit_call("clear", entry.pcpu, name, outcome, record_id=cleared_id)
                if reply is None:
                    self._requeue_after_failure(record_type, entry, link)
                    return hv_pb2.ClearStateInfoResponse(
                        sal_status=SAL_CALL_ERROR, pcpu=entry.pcpu, by_ipi=by_ipi
                    )
                self._after_clear(record_type, entry, link, reply.remaining)
        self._pump(record_type)
        return hv_pb2.ClearStateInfoResponse(
            sal_status=SAL_OK, cleared_record_id=cleared_id, pcpu=entry.pcpu, by_ipi=by_ipi
        )

    def _after_clear(self, record_type: int, entry: Entry, link: PcpuLink, remaining: int) -> None:
        """The clear landed: free the entry, or send it to the tail if its pCPU has more."""
        link.release()
        self.counters.records_cleared += 1
        queue, name = self.queues[record_type], type_name(record_type)
        if queue.in_flight is entry:
            queue.release_in_flight()
        if remaining > 0 or entry.dirty:
            queue.requeue_tail(entry)
            self.counters.requeues += 1
            self.events.emit(
                "entry_requeued", pcpu=entry.pcpu, type=name, where="tail", remaining=remaining
            )
        else:
            queue.discard(entry.pcpu)
            self.events.emit("entry_freed", pcpu=entry.pcpu, type=name, why="cleared")

    def _clear_in_background(
        self, record_type: int, entry: Entry, link: PcpuLink, by_ipi: bool
    ) -> None:
        """Pipelined CLEAR: dom0 is answered now; the entry waits, queued, for the answer."""
        assert self.pipeline is not None
        queue, name, cleared_id = self.queues[record_type], type_name(record_type), entry.record_id
        queue.release_in_flight()
        queue.requeue_tail(entry)  # not injected while its clear is under way (_ready)
        self.pipeline.forget_read((entry.pcpu, record_type))

        def done(result: tuple[object, object]) -> None:
            reply, outcome = result
            self._emit_call("clear", entry.pcpu, name, outcome, record_id=cleared_id)  # type: ignore[arg-type]
            if reply is None:
                delay = link.hold()
                self.events.emit(
                    "entry_requeued",
                    pcpu=entry.pcpu,
                    type=name,
                    where="tail",
                    why="clear_failed",
                    hold_s=round(delay, 3),
                )
                self._wake_after(delay)
            else:
                self._after_clear(record_type, entry, link, reply.remaining)  # type: ignore[attr-defined]
            self._pump(record_type)

        self.pipeline.clear_in_background(
            (entry.pcpu, record_type),
            lambda: self.sal.clear(link, record_type, cleared_id, by_ipi),
            done,  # type: ignore[arg-type]
        )

    async def _read(
        self, pcpu: int, record_type: int, by_ipi: bool
    ) -> tuple[sal_pb2.GetStateInfoResponse | None, CallOutcome, bool]:
        """GET the pCPU's current record: the read-ahead if one was started, else now."""
        if self.pipeline is not None:
            ahead = self.pipeline.take_read((pcpu, record_type))
            if ahead is not None:
                result: GetResult = await ahead
                return result[0], result[1], True
            await self.pipeline.wait_clear((pcpu, record_type))
        reply, outcome = await self.sal.get(self.links[pcpu], record_type, by_ipi)
        return reply, outcome, False

    def _read_ahead_next(self, record_type: int, current: int) -> None:
        """While dom0 handles this record, read the next entry's record by IPI."""
        if self.pipeline is None:
            return
        ready = self._ready(record_type)
        for entry in self.queues[record_type]:
            if entry.pcpu != current and ready(entry.pcpu):
                self._read_ahead(entry.pcpu, record_type)
                return

    def _emit_call(
        self, call: str, pcpu: int, name: str, outcome: CallOutcome, **fields: object
    ) -> None:
        self.events.emit(
            f"{call}_ipi" if outcome.by_ipi else f"{call}_local",
            pcpu=pcpu,
            type=name,
            attempts=outcome.attempts,
            ms=round(outcome.elapsed_ms, 3),
            error=outcome.error.name if outcome.error else None,
            **fields,
        )

    def _requeue_after_failure(self, record_type: int, entry: Entry, link: PcpuLink) -> None:
        """The call failed after all retries: keep the entry, at the tail, and hold its pCPU."""
        self.queues[record_type].release_in_flight()
        self.queues[record_type].requeue_tail(entry)
        delay = link.hold()
        self.events.emit(
            "entry_requeued",
            pcpu=entry.pcpu,
            type=type_name(record_type),
            where="tail",
            why="call_failed",
            hold_s=round(delay, 3),
        )
        self._wake_after(delay)
        # Injected types move on to the next pCPU once this call's lock is released.
        asyncio.get_running_loop().call_soon(self._pump, record_type)

    def _wake_after(self, delay: float) -> None:
        async def wake() -> None:
            await self.clock.sleep(delay)
            self._pump_all()

        task = asyncio.create_task(wake())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

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
