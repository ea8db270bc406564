"""Throttled lines at run time, per line: mask on a storm, poll on a timer, unmask when quiet.

One LineState per (pCPU, CMC|CPE) line, made on first use, so quiet pCPUs
cost nothing: no timer, no polling. A polling line has one task, which masks
the line, looks at the pCPU's line at the policy's interval (DescribePcpu on
extended firmware, a GET on plain SAL), queues what it finds, and unmasks the
line when the policy returns to interrupt mode; records created after the last
poll raised no interrupt, so the line is looked at once more after unmasking.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import grpc

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.vocab import type_name
from xenmca.xen.firmware import TypeView
from xenmca.xen.poll_count import PollMemory
from xenmca.xen.throttle import LinePolicy, Mode, Transition
from xenmca.xen.throttle_scope import MODES, ScopeContext, emit_transition, set_mask, stop_tasks

log = logging.getLogger(__name__)


@dataclass
class LineState:
    pcpu: int
    record_type: int
    policy: LinePolicy
    transitions: int = 0
    memory: PollMemory = field(default_factory=PollMemory)
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class LinePoller:
    """Owns every line's throttle state and the polling tasks of the lines in polling mode."""

    name = "per-line"

    def __init__(self, context: ScopeContext) -> None:
        self.context = context
        self.lines: dict[tuple[int, int], LineState] = {}

    def line(self, pcpu: int, record_type: int) -> LineState:
        key = (pcpu, record_type)
        state = self.lines.get(key)
        if state is None:
            policy = self.context.throttle.new_line(is_cpe=record_type == self.context.cpe_type)
            state = self.lines[key] = LineState(pcpu, record_type, policy)
        return state

    def mode(self, pcpu: int, record_type: int) -> Mode:
        line = self.lines.get((pcpu, record_type))
        return line.policy.mode if line is not None else Mode.INTERRUPT

    def on_interrupt(self, pcpu: int, record_type: int) -> None:
        line = self.line(pcpu, record_type)
        transition = line.policy.on_interrupt(self.context.state.clock.now())
        if transition is not None:
            self._record(line, transition)
            self._start_polling(line)

    def on_connected(self, pcpu: int, record_type: int) -> None:
        line = self.line(pcpu, record_type)
        if line.policy.mode is Mode.POLLING and line.task is None:
            self._start_polling(line)

    def describe(self, pcpus: list[int], types: tuple[int, ...]) -> list[hv_pb2.ThrottleLine]:
        result = []
        for pcpu in pcpus:
            for record_type in types:
                line = self.lines.get((pcpu, record_type))
                mode = line.policy.mode if line else Mode.INTERRUPT
                message = hv_pb2.ThrottleLine(
                    pcpu=pcpu,
                    type=record_type,  # type: ignore[arg-type]
                    mode=MODES[mode],
                    transitions=line.transitions if line else 0,
                )
                if line is not None and mode is Mode.POLLING:
                    message.poll_interval.FromNanoseconds(int(line.policy.interval * 1e9))
                result.append(message)
        return result

    def throttled_lines(self) -> list[tuple[int, int, Mode]]:
        return [
            (pcpu, record_type, line.policy.mode)
            for (pcpu, record_type), line in list(self.lines.items())
            if line.transitions or line.policy.mode is Mode.POLLING
        ]

    async def stop(self) -> None:
        await stop_tasks([line.task for line in self.lines.values() if line.task is not None])

    def _record(self, line: LineState, transition: Transition) -> None:
        if transition.old is not transition.new:
            line.transitions += 1
        emit_transition(self.context, line.pcpu, line.record_type, transition)

    def _start_polling(self, line: LineState) -> None:
        if line.task is None or line.task.done():
            line.task = asyncio.create_task(
                self._poll_loop(line), name=f"poll-{line.pcpu}-{line.record_type}"
            )

    async def _look(self, line: LineState) -> TypeView | None:
        """The line's oldest pending record (and counts on extended firmware); None on failure."""
        context = self.context
        try:
            views = await context.firmware.view(
                context.state.links[line.pcpu], (line.record_type,), context.call_timeout
            )
        except grpc.aio.AioRpcError as exc:
            log.debug("pCPU %d: poll failed: %s", line.pcpu, exc.code())
            return None
        return views[0] if views else None

    async def _poll_loop(self, line: LineState) -> None:
        context = self.context
        name = type_name(line.record_type)
        # Loops again when a new storm hit while the line was being unmasked.
        while line.policy.mode is Mode.POLLING:
            created = await set_mask(context, line.pcpu, line.record_type, True)
            first = await self._look(line)
            line.memory.baseline(first, created)
            if first is not None and first.head_id:
                context.enqueue_found(line.pcpu, line.record_type, "masked")
            while line.policy.mode is Mode.POLLING:
                await context.state.clock.sleep(line.policy.interval)
                context.state.counters.polls += 1
                view = await self._look(line)
                if view is None:
                    continue
                found = context.poll_count.found(line.memory, view)
                if view.head_id:
                    context.enqueue_found(line.pcpu, line.record_type, "poll")
                context.state.counters.polled_records += found
                context.state.events.emit(
                    "poll",
                    pcpu=line.pcpu,
                    type=name,
                    found=found,
                    interval_s=line.policy.interval,
                )
                transition = line.policy.on_poll(found, context.state.clock.now())
                if transition is not None:
                    self._record(line, transition)
            await set_mask(context, line.pcpu, line.record_type, False)
            # Records created after the last poll raised no interrupt: queue them now.
            last = await self._look(line)
            if last is not None and last.head_id:
                context.enqueue_found(line.pcpu, line.record_type, "unmasked")
        line.task = None
