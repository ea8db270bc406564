"""How dom0 vCPU0 learns that records wait: the ``delivery`` knob of the policy.

- `TrackedDelivery` (xenmca): one virtual interrupt in flight per injected type,
  bound to the entry it stands for; the next is injected once that entry's
  CLEAR landed (the seed's step 5); an entry without progress is injected again,
  and a dom0 that replaces another gets the entry its predecessor held.
- `VirqBitDelivery` (Xen/ia64 as shipped): ``send_guest_vcpu_virq(dom0->vcpu[0],
  VIRQ_MCA_CMC)`` in mca.c ``ia64_mca_cmc_int_handler`` sets one pending bit per
  VIRQ. Interrupts that arrive while it is pending coalesce into one; the bit is
  taken as cleared when dom0's handler runs (its trapped GET), and nothing
  re-raises it: not a CLEAR, not a poll (``ia64_mca_cmc_int_caller`` queues
  what it finds without a VIRQ). Each handler run reads and clears one record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.vocab import RECORD_TYPES, type_name
from xenmca.xen.queues import Entry, State
from xenmca.xen.state import CoordinatorState

Ready = Callable[[int], Callable[[int], bool]]
"""For a queue type, which pCPUs' entries may go in flight now."""
Injected = Callable[[Entry, int], None]
"""Told of each entry put in flight by an injection (pipelined mode reads it ahead)."""


class Delivery(Protocol):
    name: str

    def assigns_entries(self, queue_type: int) -> bool:
        """True when a virtual interrupt stands for one entry, which dom0's GET then reads;
        False when dom0's GET reads whatever entry is at the head."""
        ...

    def on_interrupt(self, queue_type: int) -> None:
        """A pCPU's interrupt was queued (or merged) in queue_type."""
        ...

    def on_found(self, queue_type: int) -> None:
        """A poll or a reconciliation queued records in queue_type."""
        ...

    def on_get(self, queue_type: int) -> None:
        """dom0's handler for queue_type runs (its trapped GET arrived)."""
        ...

    def after_release(self, queue_type: int) -> None:
        """The entry in flight left flight (cleared, freed or requeued)."""
        ...

    def wake(self) -> None:
        """Held pCPUs may be available again."""
        ...

    async def on_attach(self, replaced: bool) -> None: ...

    async def on_detach(self) -> None: ...

    def start(self) -> None: ...

    def pending(self, queue_type: int) -> bool:
        """Whether a virtual interrupt is pending (raised, dom0's handler not yet run)."""
        ...


def send_interrupt(
    state: CoordinatorState, queue_type: int, entry: Entry | None, why: str, seq: list[int]
) -> None:
    """One virtual interrupt to the attached dom0: on the AttachDom0 stream, or, for an
    entry injected while a CLEAR that asked for it releases its own (`state.carry`),
    on that CLEAR's reply: the event Xen/ia64 delivers as the trapped call returns to
    the guest (ia64_leave_kernel calls reflect_event), with the reply."""
    assert state.session is not None
    seq[0] += 1
    state.counters.injections += 1
    reinjected = entry.reinjected if entry is not None else False
    interrupt = hv_pb2.AttachDom0Response(
        type=queue_type,  # type: ignore[arg-type]
        injection_id=seq[0],
        reinjected=reinjected,
    )
    carried = False
    if state.carry is not None and entry is not None:
        carried = True
        state.carry.append(interrupt)
        state.carried[queue_type] = (entry, interrupt)
    else:
        state.session.inject(interrupt)
    state.events.emit(
        "injected",
        pcpu=entry.pcpu if entry is not None else None,
        type=type_name(queue_type),
        injection_id=seq[0],
        reinjected=reinjected,
        why=why,
        via="clear reply" if carried else "stream",
    )
    if entry is not None:
        entry.touched = state.clock.now()
        entry.reinjected = False


class TrackedDelivery:
    name = "tracked"

    def __init__(self, state: CoordinatorState, ready: Ready, injected: Injected) -> None:
        self.state = state
        self.ready = ready
        self.injected = injected
        self._seq = [0]

    def assigns_entries(self, queue_type: int) -> bool:
        return queue_type in self.state.config.injected_types

    def on_interrupt(self, queue_type: int) -> None:
        self.pump(queue_type)

    def on_found(self, queue_type: int) -> None:
        self.pump(queue_type)

    def on_get(self, queue_type: int) -> None:
        return None

    def after_release(self, queue_type: int) -> None:
        self.pump(queue_type)

    def wake(self) -> None:
        for queue_type in RECORD_TYPES:
            self.pump(queue_type)

    def pending(self, queue_type: int) -> bool:
        queue = self.state.queues[queue_type]
        return queue.in_flight is not None and queue.in_flight.state is State.INJECTED

    def pump(self, queue_type: int) -> None:
        """Inject the next entry of an injected type if none is in flight and dom0 listens."""
        state = self.state
        if not self.assigns_entries(queue_type) or state.session is None:
            return
        queue = state.queues[queue_type]
        if queue.in_flight is not None or state.locks[queue_type].locked():
            return
        entry = queue.take_next(self.ready(queue_type))
        if entry is None:
            return
        entry.state = State.INJECTED
        self.injected(entry, queue_type)
        send_interrupt(state, queue_type, entry, "queued", self._seq)

    def start(self) -> None:
        if self.state.config.reinject_after > 0:
            self.state.spawn(self._watchdog(), name="reinject-watchdog")

    async def _watchdog(self) -> None:
        """Inject again an entry dom0 has made no progress on (its interrupt or reply was lost)."""
        state = self.state
        limit = state.config.reinject_after
        while True:
            await state.clock.sleep(limit / 2)
            now = state.clock.now()
            for queue_type in state.config.injected_types:
                entry = state.queues[queue_type].in_flight
                if (
                    entry is None
                    or state.session is None
                    or state.locks[queue_type].locked()
                    or now - entry.touched < limit
                ):
                    continue
                entry.reinjected = True
                send_interrupt(state, queue_type, entry, "no progress", self._seq)

    async def on_attach(self, replaced: bool) -> None:
        if replaced:
            # The entries the replaced dom0 held are delivered again to this one.
            await self._take_back_in_flight(why="replaced")
        self.wake()

    async def on_detach(self) -> None:
        await self._take_back_in_flight(why="detach")

    async def _take_back_in_flight(self, why: str) -> None:
        state = self.state
        for queue_type, queue in state.queues.items():
            async with state.locks[queue_type]:
                if queue.in_flight is None:
                    continue
                entry = queue.release_in_flight()
                queue.requeue_head(entry)
                entry.reinjected = True
                state.events.emit(
                    "entry_requeued",
                    pcpu=entry.pcpu,
                    type=type_name(queue_type),
                    where="head",
                    why=why,
                )


class VirqBitDelivery:
    name = "virq-bit"

    def __init__(self, state: CoordinatorState) -> None:
        self.state = state
        self._pending: dict[int, bool] = dict.fromkeys(RECORD_TYPES, False)
        self._seq = [0]
        self.coalesced = 0

    def assigns_entries(self, queue_type: int) -> bool:
        return False

    def on_interrupt(self, queue_type: int) -> None:
        if queue_type not in self.state.config.injected_types:
            return  # CPE: "CPE error does not inform to dom0" (mca.c, 758fbf680d)
        if self._pending[queue_type]:
            self.coalesced += 1
            self.state.counters.virqs_coalesced += 1
            return
        self._pending[queue_type] = True
        if self.state.session is not None:
            send_interrupt(self.state, queue_type, None, "virq", self._seq)

    def on_found(self, queue_type: int) -> None:
        return None

    def on_get(self, queue_type: int) -> None:
        self._pending[queue_type] = False

    def after_release(self, queue_type: int) -> None:
        return None

    def wake(self) -> None:
        return None

    def pending(self, queue_type: int) -> bool:
        return self._pending[queue_type]

    def start(self) -> None:
        return None

    async def on_attach(self, replaced: bool) -> None:
        # An event channel's pending bit outlives the handler that did not run.
        for queue_type, pending in self._pending.items():
            if pending and self.state.session is not None:
                send_interrupt(self.state, queue_type, None, "virq pending at attach", self._seq)

    async def on_detach(self) -> None:
        return None
