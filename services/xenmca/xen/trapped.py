"""dom0's trapped SAL calls: GET (step 3) and CLEAR (steps 4-5), serial or pipelined.

One `TrappedCalls` per coordinator, composed of the policy's strategies: the
delivery (which entry a GET reads), the clear target (which record a CLEAR
clears), and the placements after a CLEAR or a failed call. The flow itself is
written once here; what differs between xenmca and the shipped Xen/ia64 lives
in those strategies (xenmca.xen.policy names them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.vocab import RecordType, SalStatus, type_name
from xenmca.xen.delivery import Delivery
from xenmca.xen.firmware import Cleared, FirmwareAccess, corrected_copy
from xenmca.xen.outcomes import ClearTarget, Placement
from xenmca.xen.pipeline import GetResult, Pipeline
from xenmca.xen.queues import Entry, State
from xenmca.xen.sal_calls import CallOutcome
from xenmca.xen.state import CoordinatorState


@dataclass(frozen=True)
class EntryRules:
    """What the policy does with an entry after each kind of SAL call."""

    clear_target: ClearTarget
    after_clear: Placement
    clear_failure: Placement
    get_failure: Placement


class TrappedCalls:
    """GET and CLEAR as Xen traps them from dom0."""

    def __init__(
        self,
        state: CoordinatorState,
        firmware: FirmwareAccess,
        delivery: Delivery,
        rules: EntryRules,
        pipeline: Pipeline | None,
        ready: Callable[[int], Callable[[int], bool]],
    ) -> None:
        self.state = state
        self.firmware = firmware
        self.delivery = delivery
        self.rules = rules
        self.pipeline = pipeline
        self.ready = ready

    # -- step 3: trapped GET ----------------------------------------------------

    async def get_state_info(self, queue_type: int) -> hv_pb2.GetStateInfoResponse:
        state = self.state
        queue = state.queues[queue_type]
        async with state.locks[queue_type]:
            self.delivery.on_get(queue_type)
            entry = queue.in_flight
            if entry is None and not self.delivery.assigns_entries(queue_type):
                entry = queue.take_next(self.ready(queue_type))  # the head goes in flight
                if entry is not None:
                    entry.state = State.INJECTED
            if entry is None:
                return hv_pb2.GetStateInfoResponse(sal_status=SalStatus.NO_INFORMATION)
            by_ipi = state.by_ipi(entry.pcpu)
            reply, outcome, ahead = await self._read(entry, queue_type, by_ipi)
            name = type_name(queue_type)
            self._emit_call("get", entry.pcpu, name, outcome, read_ahead=ahead)
            if reply is None:
                status = self._fail(self.rules.get_failure, queue_type, entry)
                return hv_pb2.GetStateInfoResponse(sal_status=status, by_ipi=by_ipi)
            state.links[entry.pcpu].release()
            if reply.sal_status != SalStatus.SUCCESS:
                # Firmware has nothing left for this entry (already drained): free it.
                queue.remove(entry)
                state.events.emit("entry_freed", pcpu=entry.pcpu, type=name, why="empty")
                asyncio.get_running_loop().call_soon(self.delivery.after_release, queue_type)
                return hv_pb2.GetStateInfoResponse(
                    sal_status=SalStatus.NO_INFORMATION, by_ipi=by_ipi
                )
            entry.state = State.READ
            entry.touched = state.clock.now()
            entry.record_id = reply.record.record_id
            state.counters.records_copied += 1
            state.events.emit(
                "record_copied", pcpu=entry.pcpu, type=name, record_id=entry.record_id
            )
            self._read_ahead_next(queue_type, entry.pcpu)
            record = reply.record
            if entry.sal_type != queue_type and entry.sal_type == RecordType.MCA:
                record = corrected_copy(reply)
            if state.config.broken_rule == "clear-on-get":
                await self.firmware.clear_read(
                    state.links[entry.pcpu], entry.sal_type, entry.record_id, by_ipi, False
                )
                state.events.emit(
                    "broken_rule_applied",
                    rule="clear-on-get",
                    pcpu=entry.pcpu,
                    type=name,
                    record_id=entry.record_id,
                )
            return hv_pb2.GetStateInfoResponse(
                sal_status=SalStatus.SUCCESS, record=record, by_ipi=by_ipi
            )
        # (the lock is released here; a tracked type's next entry waits for CLEAR)

    # -- step 4-5: trapped CLEAR ------------------------------------------------

    async def clear_state_info(
        self, queue_type: int, record_id: int | None, pcpu: int | None = None, carry_for: str = ""
    ) -> hv_pb2.ClearStateInfoResponse:
        state = self.state
        name = type_name(queue_type)
        target = self.rules.clear_target
        async with state.locks[queue_type]:
            choice = target.choose(state, queue_type, record_id, pcpu)
            if choice is None:
                return hv_pb2.ClearStateInfoResponse(sal_status=SalStatus.NO_INFORMATION)
            if choice.entry is None:  # cleared before: this CLEAR repeats one whose reply was lost
                repeated = hv_pb2.ClearStateInfoResponse(
                    sal_status=SalStatus.SUCCESS,
                    cleared_record_id=choice.record_id or 0,
                    pcpu=choice.pcpu or 0,
                    by_ipi=state.by_ipi(choice.pcpu or 0),
                    already_cleared=True,
                )
                again = self._carried_again(queue_type, carry_for)
                if again is not None:
                    repeated.next_interrupt.CopyFrom(again)
                return repeated
            entry = choice.entry
            link = state.links[entry.pcpu]
            by_ipi = state.by_ipi(entry.pcpu)
            if self.pipeline is not None and choice.record_id is not None:
                cleared_id = choice.record_id
                self._clear_in_background(queue_type, entry, choice.record_id, by_ipi)
                target.cleared(queue_type, entry.pcpu, cleared_id)
                status = SalStatus.SUCCESS
            else:
                want = self.rules.after_clear.needs_remaining
                if choice.record_id is not None:
                    cleared, outcome = await self.firmware.clear_read(
                        link, entry.sal_type, choice.record_id, by_ipi, want
                    )
                else:
                    cleared, outcome = await self.firmware.clear_current(
                        link, entry.sal_type, by_ipi, want
                    )
                cleared_id = cleared.record_id if cleared is not None else 0
                self._emit_call("clear", entry.pcpu, name, outcome, record_id=cleared_id or None)
                if cleared is not None and cleared_id:
                    target.cleared(queue_type, entry.pcpu, cleared_id)
                status = self._after_clear(queue_type, entry, cleared)
        carried: list[hv_pb2.AttachDom0Response] = []
        state.carry = carried if state.carries_for(carry_for) else None
        try:
            self.delivery.after_release(queue_type)  # synchronous: only this type's next
        finally:
            state.carry = None
        reply = hv_pb2.ClearStateInfoResponse(
            sal_status=status, cleared_record_id=cleared_id, pcpu=entry.pcpu, by_ipi=by_ipi
        )
        if carried:
            reply.next_interrupt.CopyFrom(carried[0])
        return reply

    def _carried_again(self, queue_type: int, carry_for: str) -> hv_pb2.AttachDom0Response | None:
        """For a repeated CLEAR: the interrupt the lost reply carried, if its entry still waits
        for dom0's handler (in flight, injected, not re-injected since on the stream)."""
        carried = self.state.carried.get(queue_type)
        if carried is None or not self.state.carries_for(carry_for):
            return None
        entry, interrupt = carried
        queue = self.state.queues[queue_type]
        if queue.in_flight is not entry or entry.state is not State.INJECTED:
            return None
        return interrupt

    def _after_clear(self, queue_type: int, entry: Entry, cleared: Cleared | None) -> SalStatus:
        """Place the entry after its clear landed (or failed); the SAL status dom0 gets."""
        if cleared is None:
            return self._fail(self.rules.clear_failure, queue_type, entry)
        self.state.links[entry.pcpu].release()
        if not cleared.nothing:
            self.state.counters.records_cleared += 1
        self.rules.after_clear.place(self.state, queue_type, entry, cleared.remaining)
        return SalStatus.SUCCESS

    def _fail(self, placement: Placement, queue_type: int, entry: Entry) -> SalStatus:
        """A call failed after all its attempts: place the entry; the SAL status for dom0."""
        if placement.place(self.state, queue_type, entry, None) == "held":
            link = self.state.links[entry.pcpu]
            self._wake_after(max(0.0, link.hold_until - self.state.clock.now()))
        # Tracked types move on to the next pCPU once this call's lock is released.
        asyncio.get_running_loop().call_soon(self.delivery.after_release, queue_type)
        return placement.failure_status

    def _clear_in_background(
        self, queue_type: int, entry: Entry, record_id: int, by_ipi: bool
    ) -> None:
        """Pipelined CLEAR: dom0 is answered now; the entry waits, queued, for the answer."""
        assert self.pipeline is not None
        state, name = self.state, type_name(queue_type)
        link = state.links[entry.pcpu]
        # Not injected while its clear is under way (see ready).
        state.queues[queue_type].requeue_tail(entry)
        self.pipeline.forget_read((entry.pcpu, queue_type))

        def done(result: tuple[Cleared | None, CallOutcome]) -> None:
            cleared, outcome = result
            self._emit_call("clear", entry.pcpu, name, outcome, record_id=record_id)
            if cleared is None:
                delay = link.hold()
                state.events.emit(
                    "entry_requeued",
                    pcpu=entry.pcpu,
                    type=name,
                    where="tail",
                    why="clear_failed",
                    hold_s=round(delay, 3),
                )
                self._wake_after(delay)
            else:
                link.release()
                state.counters.records_cleared += 1
                self.rules.after_clear.place(state, queue_type, entry, cleared.remaining)
            self.delivery.after_release(queue_type)

        self.pipeline.clear_in_background(
            (entry.pcpu, queue_type),
            lambda: self.firmware.clear_read(link, entry.sal_type, record_id, by_ipi, True),
            done,
        )

    async def _read(
        self, entry: Entry, queue_type: int, by_ipi: bool
    ) -> tuple[sal_pb2.GetStateInfoResponse | None, CallOutcome, bool]:
        """GET the entry's current record: the read-ahead if one was started, else now."""
        key = (entry.pcpu, queue_type)
        if self.pipeline is not None:
            ahead = self.pipeline.take_read(key)
            if ahead is not None:
                result: GetResult = await ahead
                return result[0], result[1], True
            await self.pipeline.wait_clear(key)
        reply, outcome = await self.firmware.read(
            self.state.links[entry.pcpu], entry.sal_type, by_ipi
        )
        return reply, outcome, False

    def read_ahead(self, entry: Entry, queue_type: int) -> None:
        """Pipelined mode: start reading an injected entry's record now."""
        if self.pipeline is not None:
            link = self.state.links[entry.pcpu]
            by_ipi = self.state.by_ipi(entry.pcpu)
            self.pipeline.read_ahead(
                (entry.pcpu, queue_type),
                lambda: self.firmware.read(link, entry.sal_type, by_ipi),
            )

    def _read_ahead_next(self, queue_type: int, current: int) -> None:
        """While dom0 handles this record, read the next entry's record by IPI."""
        if self.pipeline is None:
            return
        ready = self.ready(queue_type)
        for entry in self.state.queues[queue_type]:
            if entry.pcpu != current and ready(entry.pcpu):
                self.read_ahead(entry, queue_type)
                return

    def _emit_call(
        self, call: str, pcpu: int, name: str, outcome: CallOutcome, **fields: object
    ) -> None:
        self.state.events.emit(
            f"{call}_ipi" if outcome.by_ipi else f"{call}_local",
            pcpu=pcpu,
            type=name,
            attempts=outcome.attempts,
            ms=round(outcome.elapsed_ms, 3),
            error=outcome.error.name if outcome.error else None,
            **fields,
        )

    def _wake_after(self, delay: float) -> None:
        async def wake() -> None:
            await self.state.clock.sleep(delay)
            self.delivery.wake()

        self.state.spawn(wake())
