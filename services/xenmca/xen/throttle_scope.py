"""Where storms are detected and what they throttle: the ``storm_scope`` knob, and what both
scopes share (masking until it lands, reporting transitions, the context they act in).

- `xenmca.xen.line_poller.LinePoller` (``per-line``): each pCPU's CMC and CPE
  line has its own storm history, mode and polling interval.
- `xenmca.xen.cascade_poller.CascadePoller` (``global``): Xen/ia64's mca.c keeps
  one ``static cmc_history`` for every CPU; the storm raises
  ``CMC_DISABLE_SOFTIRQ`` on every online CPU, and one poll cascade
  (``ia64_mca_cmc_int_caller`` IPI'd from CPU to CPU) decides for all of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import grpc

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.vocab import type_name
from xenmca.xen.firmware import FirmwareAccess
from xenmca.xen.poll_count import PollCount
from xenmca.xen.state import CoordinatorState
from xenmca.xen.throttle import Mode, StormRule, Transition

log = logging.getLogger(__name__)

MODES = {Mode.INTERRUPT: hv_pb2.THROTTLE_MODE_INTERRUPT, Mode.POLLING: hv_pb2.THROTTLE_MODE_POLLING}

EnqueueFound = Callable[[int, int, str], None]
"""Queue (pCPU, record type) because a poll or an unmask found a record; why."""


@dataclass
class ScopeContext:
    """What a throttle scope acts on."""

    state: CoordinatorState
    throttle: StormRule
    firmware: FirmwareAccess
    poll_count: PollCount
    enqueue_found: EnqueueFound
    cpe_type: int
    call_timeout: float


class ThrottleScope(Protocol):
    name: str

    def on_interrupt(self, pcpu: int, record_type: int) -> None:
        """O(1): feed the storm history; on a storm, start polling."""
        ...

    def on_connected(self, pcpu: int, record_type: int) -> None:
        """A pCPU (re)connected: a line that polls from the start gets its poller."""
        ...

    def mode(self, pcpu: int, record_type: int) -> Mode: ...

    def describe(self, pcpus: list[int], types: tuple[int, ...]) -> list[hv_pb2.ThrottleLine]: ...

    def throttled_lines(self) -> list[tuple[int, int, Mode]]:
        """(pCPU, type, mode) of every line that ever left interrupt mode (for metrics)."""
        ...

    async def stop(self) -> None: ...


def emit_transition(
    context: ScopeContext, pcpu: int, record_type: int, transition: Transition, **extra: object
) -> None:
    context.state.events.emit(
        "throttle_transition",
        pcpu=pcpu,
        type=type_name(record_type),
        old=transition.old.value,
        new=transition.new.value,
        interval_s=transition.interval,
        why=transition.why,
        **extra,
    )


async def set_mask(context: ScopeContext, pcpu: int, record_type: int, masked: bool) -> int | None:
    """Mask or unmask, retrying until it lands (a line must not stay masked by mistake);
    returns the created counter at that instant when the firmware tells it."""
    link = context.state.links[pcpu]
    delay = 0.05
    while True:
        try:
            created = await context.firmware.set_mask(
                link, record_type, masked, context.call_timeout
            )
        except grpc.aio.AioRpcError as exc:
            log.debug("pCPU %d: SetInterruptMask failed: %s", pcpu, exc.code())
            await context.state.clock.sleep(delay)
            delay = min(2.0, delay * 2)
            continue
        context.state.events.emit(
            "line_masked" if masked else "line_unmasked", pcpu=pcpu, type=type_name(record_type)
        )
        return created


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
