"""dom0 policy ``linux-salinfo``: what a Linux ia64 dom0 did with error records (mca.c, salinfo.c).

Two parts, as in Linux (arch/ia64/kernel, removed in 6.7):

The kernel part (mca.c ``ia64_mca_log_sal_error_record``) runs once per
virtual interrupt of a type, and once per CPE poll tick (Linux runs it on each
CPU in the poll's IPI cascade, ``ia64_mca_cpe_int_caller``; dom0 here has
one vCPU). ``ia64_log_get`` makes ONE trapped SAL_GET_STATE_INFO into the next
of two kernel buffers; ``salinfo_log_wakeup`` saves a pointer to that buffer
with the record id in one of five slots and wakes the daemon; then, if the
record is corrected, ``ia64_sal_clear_state_info(type)`` clears it in firmware
at once ("Clear logs from corrected errors in case there's no user-level
logger"). Real SAL has no clear by id, so the trapped CLEAR carries none. From
then on a corrected record exists only in volatile memory
(``xenmca.dom0.salinfo_memory``): a dom0 crash before the daemon commits it
loses it.

The user-space part (the ``salinfo_decode`` daemon, over salinfo.c's
``/proc/sal/<type>/data``) is one task per type. Woken by the kernel part, it
takes the oldest saved slot (``salinfo_log_new_read``), copies the buffer and
checks the record id against the saved one: a mismatch means a later read
reused the buffer, the slot is discarded (event ``salinfo_discarded``) and
that record is lost. With no slot left it reads SAL directly
(``salinfo_log_read_cpu``: GET, and CLEAR at once if corrected). It decodes
(a modelled delay, ``decode_delay`` seconds: the user-space pace), commits the
record to the durable log, then writes "clear" (``salinfo_log_clear``): the
slot is dropped, the record is cleared in SAL only if it is NOT corrected
(corrected ones were cleared already), and the next record is read, until
none is left.

Duplicates: salinfo keeps no index of record ids, so a record read twice (say
its CLEAR failed and the coordinator delivered it again) is written twice. The
durable log here is the same LogStore as the default policy's, which keeps one
row per (pCPU, record id); so that the testbed still sees what salinfo did,
every ``record_committed`` event says ``duplicate: false`` (the duplicates
checker counts "new" commits of one record beyond the first) and
``already_in_log`` tells whether the row existed. ``records_logged`` counts
every commit; ``duplicates_dropped`` stays 0.

Interleaving on dom0's one vCPU is modelled with the type's vCPU lock: a
kernel run holds it from GET to CLEAR (process context does not run inside an
interrupt handler), the daemon only for each single SAL call (a trapped call
keeps the vCPU in Xen until it returns, but ``salinfo_log_read_cpu`` runs with
interrupts enabled, so a virtual interrupt may come between its GET and CLEAR).

A log that refuses commits (a full disk) holds up the daemon only: it keeps
the record in hand and writes it again on the logger's one backoff
(``xenmca.dom0.log_health``), reading nothing meanwhile. The kernel part
never commits, so it goes on reading (and clearing corrected records) at the
pace of interrupts and polls, as Linux did; its saved slots then fill and drop.

On a graceful stop the daemon finishes the record in hand; whatever is left in
kernel memory is lost, as at a reboot. A crash (tasks cancelled) loses the
record in hand too.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Sequence

from xenmca.dom0.handler import DrainResult, Outcome
from xenmca.dom0.pacing import wait_unless_stopped
from xenmca.dom0.policy import Dom0Context
from xenmca.dom0.salinfo_calls import LinuxSalCalls, _ids
from xenmca.dom0.salinfo_memory import Dropped, KernelMemory, SavedSlot
from xenmca.record.v1 import record_pb2
from xenmca.vocab import type_name

log = logging.getLogger(__name__)

LINUX_SALINFO = "linux-salinfo"
DEFAULT_DECODE_DELAY = 0.05
"""Seconds salinfo_decode spends on one record before it is committed (modelled pace)."""
DAEMON_RESTART_PAUSE = 1.0
"""Seconds before a daemon that failed unexpectedly (a bug) starts again."""
CORRECTED = record_pb2.SEVERITY_CORRECTED

KERNEL = "mca.c"
"""``caller`` of the kernel part's calls (interrupt context)."""
DAEMON = "salinfo.c"
"""``caller`` of the calls made on the daemon's behalf (process context)."""


def check_decode_delay(seconds: float) -> float:
    """seconds if it is a usable decode delay (finite, >= 0); else ValueError."""
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"must be a number of seconds >= 0, got {seconds!r}")
    return seconds


class SalinfoKernel:
    """The kernel part: mca.c's handler, once per virtual interrupt or poll tick."""

    def __init__(
        self,
        context: Dom0Context,
        calls: LinuxSalCalls,
        memory: Callable[[int], KernelMemory],
        wake: Callable[[int], None],
    ) -> None:
        self._ctx = context
        self._calls = calls
        self._memory = memory
        self._wake = wake

    async def log_sal_error_record(self, record_type: int) -> Outcome:
        """``ia64_mca_log_sal_error_record(type)``; the caller holds the type's vCPU lock."""
        record, outcome = await self._calls.get(record_type, KERNEL)  # ia64_log_get
        if record is None:
            return outcome
        memory = self._memory(record_type)
        buffer = memory.ring.store(record)
        slot = SavedSlot(buffer, record.record_id, record.pcpu, record.severity)
        dropped = memory.saved.save(slot)  # salinfo_log_wakeup
        if dropped is None or dropped.slot is not slot:
            self._ctx.counters.salinfo_saved += 1
            self._ctx.events.emit(
                "salinfo_saved", **_ids(record), buffer=buffer, slots=len(memory.saved.slots)
            )
        if dropped is not None:
            _report_dropped(self._ctx, record_type, dropped)
        self._wake(record_type)
        if record.severity == CORRECTED:
            await self._calls.clear(record, KERNEL)  # ia64_sal_clear_state_info(type)
        return Outcome.READ


def _report_dropped(context: Dom0Context, record_type: int, dropped: Dropped) -> None:
    slot = dropped.slot
    context.counters.salinfo_discarded += 1
    severity = record_pb2.Severity.Name(slot.severity).removeprefix("SEVERITY_").lower()
    context.events.emit(
        "salinfo_discarded",
        pcpu=slot.pcpu,
        type=type_name(record_type),
        record_id=slot.record_id,
        reason=dropped.reason.value,
        severity=severity,
    )
    log.debug(
        "salinfo: %s record %d of pCPU %d discarded (%s)",
        type_name(record_type),
        slot.record_id,
        slot.pcpu,
        dropped.reason.value,
    )


class SalinfoDaemon:
    """salinfo_decode for one record type, with salinfo.c's read and clear paths under it."""

    def __init__(
        self,
        record_type: int,
        context: Dom0Context,
        calls: LinuxSalCalls,
        memory: KernelMemory,
        decode_delay: float,
    ) -> None:
        self.record_type = record_type
        self._ctx = context
        self._calls = calls
        self._memory = memory
        self._decode_delay = decode_delay
        self._event = asyncio.Event()
        """vCPU0's bit in salinfo.c ``data->cpu_event`` (with the mutex kick that goes with it)."""

    def wake(self) -> None:
        """``salinfo_log_wakeup``: cpu_set(cpu, data->cpu_event); salinfo_work_to_do(data)."""
        self._event.set()

    async def run(self) -> None:
        """Until the logger stops: wait for an event, then log records until none is left."""
        while await self._wait_for_event():
            record = await self._new_read()
            while record is not None:
                await self._decode(record)
                if not await self._commit(record) or self._ctx.stopping.is_set():
                    return
                record = await self._clear(record)

    async def _wait_for_event(self) -> bool:
        ctx = self._ctx
        if not self._event.is_set():
            return await wait_unless_stopped(self._event.wait(), ctx.stopping)
        return not ctx.stopping.is_set()

    async def _new_read(self) -> record_pb2.ErrorRecord | None:
        """``salinfo_log_new_read``: the oldest saved record, else one read from SAL directly."""
        record, discarded = self._memory.saved.take(self._memory.ring)
        for dropped in discarded:
            _report_dropped(self._ctx, self.record_type, dropped)
        if record is not None:
            return record
        # salinfo_log_read_cpu: GET, and "Clear corrected errors as they are read from SAL".
        lock = self._ctx.vcpu_lock(self.record_type)
        async with lock:
            record, _ = await self._calls.get(self.record_type, DAEMON)
        if record is None:
            self._event.clear()  # cpu_clear(cpu, data->cpu_event): nothing left
            return None
        if record.severity == CORRECTED:
            async with lock:
                await self._calls.clear(record, DAEMON)
        return record

    async def _decode(self, record: record_pb2.ErrorRecord) -> None:
        await self._ctx.clock.sleep(self._decode_delay)

    async def _commit(self, record: record_pb2.ErrorRecord) -> bool:
        """Write the record to the durable log (False: stopped before it could be written).

        salinfo cannot tell a re-read from a new record, so the event says "new". A
        log that refuses the record is written again when the log health's backoff
        says (the record stays in hand meanwhile, as the daemon would keep it).
        """
        ctx = self._ctx
        while True:
            async with ctx.log_health.attempt(ctx.stopping) as go:
                if not go:
                    return False
                started = time.perf_counter()
                try:
                    stored = await ctx.store.commit(record)
                except sqlite3.Error as exc:
                    ctx.counters.commit_errors += 1
                    ctx.log_health.commit_failed(exc, type_name(self.record_type))
                    continue
                ctx.log_health.commit_succeeded()
                break
        commit_ms = (time.perf_counter() - started) * 1000
        if ctx.commit_observer is not None:
            ctx.commit_observer(commit_ms / 1000)
        ctx.counters.records_logged += 1
        ctx.events.emit(
            "record_committed",
            **_ids(record),
            duplicate=False,
            already_in_log=not stored,
            commit_ms=round(commit_ms, 3),
            created_monotonic_ns=record.created_monotonic_ns,
        )
        return True

    async def _clear(self, record: record_pb2.ErrorRecord) -> record_pb2.ErrorRecord | None:
        """``salinfo_log_clear``: drop the slot, clear in SAL if not corrected, read on."""
        self._memory.saved.release()
        # "Corrected errors have already been cleared from SAL"
        if record.severity != CORRECTED:
            async with self._ctx.vcpu_lock(self.record_type):
                await self._calls.clear(record, DAEMON)
        return await self._new_read()


class SalinfoPolicy:
    """``linux-salinfo``: the kernel part per interrupt or poll tick, a daemon per record type."""

    name = LINUX_SALINFO

    def __init__(self, decode_delay: float = DEFAULT_DECODE_DELAY) -> None:
        self.decode_delay = check_decode_delay(decode_delay)
        self.memory: dict[int, KernelMemory] = {}
        """Per record type: the volatile kernel memory (gone with the process)."""
        self._daemons: dict[int, SalinfoDaemon] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._ctx: Dom0Context | None = None
        self._calls: LinuxSalCalls | None = None
        self._kernel: SalinfoKernel | None = None

    def start(self, context: Dom0Context) -> None:
        self._ctx = context
        self._calls = LinuxSalCalls(context)
        self._kernel = SalinfoKernel(context, self._calls, self._memory_of, self._wake)

    @property
    def tasks(self) -> Sequence[asyncio.Task[None]]:
        return tuple(self._tasks)

    async def on_interrupt(self, record_type: int) -> None:
        await self._kernel_run(record_type)

    async def on_poll(self, record_type: int) -> DrainResult:
        # ia64_mca_cpe_int_caller compares IA64_LOG_COUNT before and after the cascade.
        outcome = await self._kernel_run(record_type)
        return DrainResult(found=int(outcome.found_record), last=outcome)

    async def _kernel_run(self, record_type: int) -> Outcome:
        assert self._ctx is not None and self._kernel is not None, "start() first"
        async with self._ctx.vcpu_lock(record_type):
            return await self._kernel.log_sal_error_record(record_type)

    def _memory_of(self, record_type: int) -> KernelMemory:
        return self.memory.setdefault(record_type, KernelMemory())

    def _wake(self, record_type: int) -> None:
        """Wake the type's daemon, starting it with the first record saved for its type."""
        daemon = self._daemons.get(record_type)
        if daemon is None:
            assert self._ctx is not None and self._calls is not None
            if self._ctx.stopping.is_set():
                return  # too late for a new daemon: the saved record dies with dom0
            daemon = SalinfoDaemon(
                record_type,
                self._ctx,
                self._calls,
                self._memory_of(record_type),
                self.decode_delay,
            )
            self._daemons[record_type] = daemon
            task = asyncio.create_task(
                self._run_daemon(daemon), name=f"dom0-salinfo-{type_name(record_type)}"
            )
            self._tasks.append(task)
        daemon.wake()

    async def _run_daemon(self, daemon: SalinfoDaemon) -> None:
        while True:
            try:
                await daemon.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not silence the type: log it and go on
                log.exception("salinfo daemon for %s failed", type_name(daemon.record_type))
                assert self._ctx is not None
                await self._ctx.clock.sleep(DAEMON_RESTART_PAUSE)
