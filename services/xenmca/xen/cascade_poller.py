"""One storm detector and one poll cascade per record type, for all pCPUs (Xen/ia64 as shipped).

xen/arch/ia64/linux-xen/mca.c:
- ``ia64_mca_cmc_int_handler`` keeps ``static unsigned long cmc_history[]`` for
  every CPU; ``count >= CMC_HISTORY_LENGTH`` within HZ sets the global
  ``cmc_polling_enabled`` and raises ``CMC_DISABLE_SOFTIRQ`` on ``cpu_online_map``:
  one pCPU's storm masks every pCPU's CMC line;
- ``ia64_mca_cmc_int_caller`` (the poll) runs ``ia64_log_queue`` on each CPU in
  turn, then compares ``IA64_LOG_COUNT`` with its value at the start: unchanged,
  it raises ``CMC_ENABLE_SOFTIRQ`` everywhere and returns to interrupt mode;
- CPE likewise with ``cpe_history`` and ``ia64_mca_cpe_int_caller``'s interval.
Polls queue what they find but send no VIRQ, and unmasking queues nothing.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.vocab import type_name
from xenmca.xen.poll_count import PollMemory
from xenmca.xen.throttle import LinePolicy, Mode, Transition
from xenmca.xen.throttle_scope import MODES, ScopeContext, emit_transition, set_mask, stop_tasks

log = logging.getLogger(__name__)

MASK_CONCURRENCY = 64
"""Lines masked or unmasked at once when a storm throttles every pCPU."""


class CascadePoller:
    name = "global"

    def __init__(self, context: ScopeContext) -> None:
        self.context = context
        self.policies: dict[int, LinePolicy] = {}
        self.transitions: dict[int, int] = {}
        self.memory: dict[tuple[int, int], PollMemory] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        # The pCPU whose interrupt tripped the storm rule, per type (for the events).
        self.trigger: dict[int, int] = {}

    def _policy(self, record_type: int) -> LinePolicy:
        policy = self.policies.get(record_type)
        if policy is None:
            is_cpe = record_type == self.context.cpe_type
            policy = self.policies[record_type] = self.context.throttle.new_line(is_cpe=is_cpe)
            self.transitions[record_type] = 0
        return policy

    def mode(self, pcpu: int, record_type: int) -> Mode:
        policy = self.policies.get(record_type)
        return policy.mode if policy is not None else Mode.INTERRUPT

    def on_interrupt(self, pcpu: int, record_type: int) -> None:
        policy = self._policy(record_type)
        transition = policy.on_interrupt(self.context.state.clock.now())
        if transition is not None:
            self.trigger[record_type] = pcpu
            self._record(record_type, transition, trigger_pcpu=pcpu)
            self._start(record_type)

    def on_connected(self, pcpu: int, record_type: int) -> None:
        if self._policy(record_type).mode is Mode.POLLING:
            self._start(record_type)

    def describe(self, pcpus: list[int], types: tuple[int, ...]) -> list[hv_pb2.ThrottleLine]:
        result = []
        for record_type in types:
            policy = self.policies.get(record_type)
            mode = policy.mode if policy is not None else Mode.INTERRUPT
            for pcpu in pcpus:
                message = hv_pb2.ThrottleLine(
                    pcpu=pcpu,
                    type=record_type,  # type: ignore[arg-type]
                    mode=MODES[mode],
                    transitions=self.transitions.get(record_type, 0),
                )
                if policy is not None and mode is Mode.POLLING:
                    message.poll_interval.FromNanoseconds(int(policy.interval * 1e9))
                result.append(message)
        return result

    def throttled_lines(self) -> list[tuple[int, int, Mode]]:
        return [
            (pcpu, record_type, policy.mode)
            for record_type, policy in self.policies.items()
            if self.transitions.get(record_type) or policy.mode is Mode.POLLING
            for pcpu in self.context.state.links
        ]

    async def stop(self) -> None:
        await stop_tasks(list(self.tasks.values()))

    def _record(self, record_type: int, transition: Transition, **extra: object) -> None:
        """A transition of the one global line, reported for every pCPU's line it governs."""
        if transition.old is not transition.new:
            self.transitions[record_type] = self.transitions.get(record_type, 0) + 1
        why = transition.why
        trigger = extra.get("trigger_pcpu")
        if trigger is not None:
            why = f"{why} on pCPU {trigger} (one detector for all pCPUs)"
        shown = Transition(transition.old, transition.new, transition.interval, why)
        for pcpu in sorted(self.context.state.links):
            emit_transition(self.context, pcpu, record_type, shown, scope="global", **extra)

    def _start(self, record_type: int) -> None:
        task = self.tasks.get(record_type)
        if task is None or task.done():
            self.tasks[record_type] = asyncio.create_task(
                self._cascade_loop(record_type), name=f"poll-cascade-{record_type}"
            )

    async def _mask_all(self, record_type: int, masked: bool) -> None:
        limit = asyncio.Semaphore(MASK_CONCURRENCY)

        async def one(pcpu: int) -> None:
            async with limit:
                created = await set_mask(self.context, pcpu, record_type, masked)
            if masked:
                memory = self.memory.setdefault((pcpu, record_type), PollMemory())
                memory.baseline(None, created)

        await asyncio.gather(*(one(pcpu) for pcpu in sorted(self.context.state.links)))

    async def _cascade_loop(self, record_type: int) -> None:
        context = self.context
        policy = self._policy(record_type)
        while policy.mode is Mode.POLLING:
            await self._mask_all(record_type, True)
            while policy.mode is Mode.POLLING:
                await context.state.clock.sleep(policy.interval)
                found = await self._cascade(record_type)
                transition = policy.on_poll(found, context.state.clock.now())
                if transition is not None:
                    self._record(record_type, transition)
            await self._mask_all(record_type, False)
        self.tasks.pop(record_type, None)

    async def _cascade(self, record_type: int) -> int:
        """One poll: each pCPU in turn (``platform_send_ipi`` to the next online CPU)."""
        context = self.context
        name = type_name(record_type)
        found = 0
        for pcpu in sorted(context.state.links):
            context.state.counters.polls += 1
            try:
                views = await context.firmware.view(
                    context.state.links[pcpu], (record_type,), context.call_timeout
                )
            except grpc.aio.AioRpcError as exc:
                log.debug("pCPU %d: poll failed: %s", pcpu, exc.code())
                continue
            if not views:
                continue
            memory = self.memory.setdefault((pcpu, record_type), PollMemory())
            here = context.poll_count.found(memory, views[0])
            found += here
            if views[0].head_id:
                context.enqueue_found(pcpu, record_type, "poll")
            if here:
                context.state.events.emit(
                    "poll", pcpu=pcpu, type=name, found=here, interval_s=None, scope="global"
                )
        context.state.counters.polled_records += found
        return found
