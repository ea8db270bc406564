"""dom0's trapped SAL calls: GET (step 3) and CLEAR (steps 4-5), serial or pipelined.

A mixin of Coordinator: the state it works on (queues, links, locks, the
pipeline) is the coordinator's; this module holds what happens to it when
dom0 calls GET or CLEAR, and when such a call fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.rpc.clock import Clock
from xenmca.rpc.events import EventLog
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.xen.counters import Counters
from xenmca.xen.links import PcpuLink
from xenmca.xen.model import (
    SAL_CALL_ERROR,
    SAL_NO_INFORMATION,
    SAL_OK,
    CoordinatorConfig,
    type_name,
)
from xenmca.xen.pipeline import GetResult, Pipeline
from xenmca.xen.queues import Entry, State, TypeQueue
from xenmca.xen.sal_calls import CallOutcome, SalCaller


class TrappedCalls:
    """GET and CLEAR as Xen traps them from dom0."""

    config: CoordinatorConfig
    clock: Clock
    events: EventLog
    counters: Counters
    queues: dict[int, TypeQueue]
    links: dict[int, PcpuLink]
    sal: SalCaller
    pipeline: Pipeline | None
    vcpu0_pcpu: int
    _locks: dict[int, asyncio.Lock]
    _timers: set[asyncio.Task[None]]

    def _ready(self, record_type: int) -> Callable[[int], bool]:
        raise NotImplementedError

    def _read_ahead(self, pcpu: int, record_type: int) -> None:
        raise NotImplementedError

    def _pump(self, record_type: int) -> None:
        raise NotImplementedError

    def _pump_all(self) -> None:
        raise NotImplementedError

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
            entry.touched = self.clock.now()
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
