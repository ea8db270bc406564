"""Throttled lines at run time: mask on a storm, poll on a timer, unmask when quiet.

One LineState per (pCPU, CMC|CPE) line, made on first use, so quiet pCPUs
cost nothing: no timer, no polling. A polling line has one task, which masks
the line, polls the pCPU's DescribePcpu at the policy's interval, queues what
it finds, and unmasks the line when the policy returns to interrupt mode.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.rpc.clock import Clock
from xenmca.rpc.events import EventLog
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.xen.counters import Counters
from xenmca.xen.links import PcpuLink
from xenmca.xen.throttle import Ia64Throttle, LinePolicy, Mode, Transition

log = logging.getLogger(__name__)

MODES = {Mode.INTERRUPT: hv_pb2.THROTTLE_MODE_INTERRUPT, Mode.POLLING: hv_pb2.THROTTLE_MODE_POLLING}


@dataclass
class LineState:
    pcpu: int
    record_type: int
    policy: LinePolicy
    transitions: int = 0
    created_seen: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class LinePoller:
    """Owns every line's throttle state and the polling tasks of the lines in polling mode."""

    def __init__(
        self,
        throttle: Ia64Throttle,
        links: dict[int, PcpuLink],
        *,
        clock: Clock,
        events: EventLog,
        counters: Counters,
        queue_pending: Callable[[int, int, str], None],
        type_name: Callable[[int], str],
        cpe_type: int,
        call_timeout: float,
    ) -> None:
        self.throttle = throttle
        self.links = links
        self.clock = clock
        self.events = events
        self.counters = counters
        self.queue_pending = queue_pending
        self.type_name = type_name
        self.cpe_type = cpe_type
        self.call_timeout = call_timeout
        self.lines: dict[tuple[int, int], LineState] = {}

    def line(self, pcpu: int, record_type: int) -> LineState:
        key = (pcpu, record_type)
        state = self.lines.get(key)
        if state is None:
            policy = self.throttle.new_line(is_cpe=record_type == self.cpe_type)
            state = self.lines[key] = LineState(pcpu, record_type, policy)
        return state

    def on_interrupt(self, pcpu: int, record_type: int) -> None:
        """O(1): feed the storm history; on a storm, start polling the line."""
        line = self.line(pcpu, record_type)
        transition = line.policy.on_interrupt(self.clock.now())
        if transition is not None:
            self._record(line, transition)
            self._start_polling(line)

    def on_connected(self, pcpu: int, record_type: int) -> None:
        """A line that polls from the start (CPE without a vector) gets its task."""
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

    async def stop(self) -> None:
        tasks = [line.task for line in self.lines.values() if line.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _record(self, line: LineState, transition: Transition) -> None:
        if transition.old is not transition.new:
            line.transitions += 1
        self.events.emit(
            "throttle_transition",
            pcpu=line.pcpu,
            type=self.type_name(line.record_type),
            old=transition.old.value,
            new=transition.new.value,
            interval_s=transition.interval,
            why=transition.why,
        )

    def _start_polling(self, line: LineState) -> None:
        if line.task is None or line.task.done():
            line.task = asyncio.create_task(
                self._poll_loop(line), name=f"poll-{line.pcpu}-{line.record_type}"
            )

    async def _set_mask(self, line: LineState, masked: bool) -> sal_pb2.SetInterruptMaskResponse:
        """Mask or unmask, retrying until it lands (a line must not stay masked by mistake)."""
        link = self.links[line.pcpu]
        delay = 0.05
        while True:
            try:
                return await link.stub.SetInterruptMask(
                    sal_pb2.SetInterruptMaskRequest(
                        type=line.record_type,  # type: ignore[arg-type]
                        masked=masked,
                    ),
                    timeout=self.call_timeout,
                    metadata=link.metadata,
                )
            except grpc.aio.AioRpcError as exc:
                log.debug("pCPU %d: SetInterruptMask failed: %s", line.pcpu, exc.code())
                await self.clock.sleep(delay)
                delay = min(2.0, delay * 2)

    async def _poll_once(self, line: LineState) -> int | None:
        """One poll: the number of records created since the last look, or None on failure."""
        link = self.links[line.pcpu]
        self.counters.polls += 1
        try:
            state = await link.stub.DescribePcpu(
                sal_pb2.DescribePcpuRequest(), timeout=self.call_timeout, metadata=link.metadata
            )
        except grpc.aio.AioRpcError as exc:
            log.debug("pCPU %d: poll failed: %s", line.pcpu, exc.code())
            return None
        for type_state in state.types:
            if type_state.type != line.record_type:
                continue
            found = max(0, type_state.created - line.created_seen)
            line.created_seen = type_state.created
            if type_state.pending > 0:
                self.queue_pending(line.pcpu, line.record_type, "poll")
            return found
        return 0

    async def _poll_loop(self, line: LineState) -> None:
        # Loops again when a new storm hit while the line was being unmasked.
        while line.policy.mode is Mode.POLLING:
            reply = await self._set_mask(line, True)
            self.events.emit("line_masked", pcpu=line.pcpu, type=self.type_name(line.record_type))
            line.created_seen = reply.created
            if reply.pending > 0:
                self.queue_pending(line.pcpu, line.record_type, "masked")
            while line.policy.mode is Mode.POLLING:
                await self.clock.sleep(line.policy.interval)
                found = await self._poll_once(line)
                if found is None:
                    continue
                self.counters.polled_records += found
                self.events.emit(
                    "poll",
                    pcpu=line.pcpu,
                    type=self.type_name(line.record_type),
                    found=found,
                    interval_s=line.policy.interval,
                )
                transition = line.policy.on_poll(found)
                if transition is not None:
                    self._record(line, transition)
            reply = await self._set_mask(line, False)
            self.events.emit("line_unmasked", pcpu=line.pcpu, type=self.type_name(line.record_type))
            # Records created after the last poll raised no interrupt: queue them now.
            if reply.pending > 0:
                self.queue_pending(line.pcpu, line.record_type, "unmasked")
        line.task = None
