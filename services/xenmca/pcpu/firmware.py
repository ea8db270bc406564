"""One simulated pCPU's firmware: its record store, its interrupt lines, paced error storms, events.

The gRPC servicer validates and authorizes requests, then calls this; tests and
in-process tools may call it directly. Events (one per InjectError batch, never
one per record): records_created, overflow, record_cleared, mask_changed,
injection_started, injection_finished, injection_cancelled.

A paced injection (rate_per_second > 0) runs in the background under an id
(1, 2, ... per firmware object) that ListInjections shows and CancelInjection takes.
Its injection_started is followed by exactly one injection_finished (all its
records made, or the pCPU stopped or failed first) or injection_cancelled (by
the operator); both come after its last records_created.

``sal_mode`` (SalMode) chooses which SAL procedures it offers: in plain mode CLEAR
by record id is refused here; what plain-mode replies leave out is the servicer's
business. Record ids, events and the store are the same in both modes.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import math
from dataclasses import dataclass

import grpc

from xenmca.pcpu import records
from xenmca.pcpu.interrupts import InterruptLine
from xenmca.pcpu.model import (
    ClearOutcome,
    InjectOutcome,
    PacedInjectionState,
    SalMode,
    TypeState,
)
from xenmca.pcpu.store import RecordStore
from xenmca.rpc import hop_trace
from xenmca.rpc.clock import Clock, MonotonicClock
from xenmca.rpc.errors import RequestError
from xenmca.rpc.events import EventLog
from xenmca.vocab import RECORD_TYPES, type_name

log = logging.getLogger(__name__)

PACE_TICK = 0.010
"""A paced injection creates its records in batches at least this far apart (seconds)."""
MAX_PACED_INJECTIONS = 64
"""Paced injections that may run at once on one pCPU."""


@dataclass(frozen=True, slots=True)
class Injection:
    """A validated InjectError: sections None means the type's default section.

    ``raw`` is a real record's bytes (InjectErrorRequest.raw_record, strictly decoded,
    ``severity`` its header's): each record created is those bytes with the
    firmware's id written into the header, instead of a generated record.
    """

    record_type: int
    severity: int
    count: int
    sections: records.Sections | None = None
    rate_per_second: float = 0.0
    raw: bytes | None = None


@dataclass(slots=True, eq=False)
class _PacedRun:
    """One paced injection while it runs, and what it has made so far."""

    injection_id: int
    injection: Injection
    started_wall_ns: int
    task: asyncio.Task[None] | None = None
    created: int = 0
    stored: int = 0
    overflowed: int = 0
    in_batch: bool = False
    """Creating a batch of records now (see PcpuFirmware._stop_run)."""
    stopping: bool = False
    cancelled: bool = False
    """Stopped by cancel_paced (the operator), not because the pCPU stops."""

    def state(self) -> PacedInjectionState:
        return PacedInjectionState(
            injection_id=self.injection_id,
            record_type=self.injection.record_type,
            severity=self.injection.severity,
            count=self.injection.count,
            rate_per_second=self.injection.rate_per_second,
            started_wall_ns=self.started_wall_ns,
            created=self.created,
            stored=self.stored,
            overflowed=self.overflowed,
        )


class PcpuFirmware:
    """The SAL firmware of one pCPU."""

    def __init__(
        self,
        store: RecordStore,
        *,
        events: EventLog | None = None,
        clock: Clock | None = None,
        sal_mode: SalMode | str = SalMode.EXTENDED,
    ) -> None:
        self.sal_mode = SalMode(sal_mode)
        self.store = store
        self.pcpu = store.pcpu
        self.line = InterruptLine(store.pcpu)
        self.events = events
        self.clock: Clock = clock or MonotonicClock()
        self._paced: set[asyncio.Task[None]] = set()
        self._runs: dict[int, _PacedRun] = {}
        self._injection_ids = itertools.count(1)
        self._closed = False

    # --- SAL procedures -------------------------------------------------------

    def max_record_size(self, record_type: int) -> int:
        return records.max_record_size(record_type)

    @property
    def plain(self) -> bool:
        """Whether this firmware offers only what real SAL offers."""
        return self.sal_mode is SalMode.PLAIN

    async def clear(self, record_type: int, record_id: int | None) -> ClearOutcome:
        """SAL_CLEAR_STATE_INFO: the current record, or (extended mode only) record_id."""
        if record_id is not None and self.plain:
            raise RequestError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "PLAIN_SAL_NO_CLEAR_BY_ID",
                f"pCPU {self.pcpu} runs plain SAL: SAL_CLEAR_STATE_INFO clears only the "
                f"current record; omit record_id (got {record_id})",
                {"record_id": str(record_id), "sal_mode": self.sal_mode.value},
            )
        # A caller that goes away (a cancelled RPC) must not keep a clear that
        # happened from being reported; the checkers read these events. In memory
        # the clear and its event run without a suspension point, so nothing can
        # cut them apart; with a state dir the commit awaits, so the pair is shielded
        # (a shield costs a task and a loop turn on every CLEAR).
        if not self.store.durable:
            return await self._clear(record_type, record_id)
        return await asyncio.shield(self._clear(record_type, record_id))

    async def _clear(self, record_type: int, record_id: int | None) -> ClearOutcome:
        outcome = await self.store.clear(record_type, record_id)
        if outcome.cleared_record_id:
            self._emit(
                "record_cleared",
                type=type_name(record_type),
                record_id=outcome.cleared_record_id,
                already_cleared=outcome.already_cleared,
                remaining=outcome.remaining,
            )
        return outcome

    def set_mask(self, record_type: int, masked: bool) -> tuple[bool, int]:
        previously, pending = self.store.set_mask(record_type, masked)
        self._emit(
            "mask_changed",
            type=type_name(record_type),
            masked=masked,
            previously_masked=previously,
            pending=pending,
        )
        return previously, pending

    def describe(self, pending_ids_limit: int = 0) -> list[TypeState]:
        """Every type's snapshot, each with up to pending_ids_limit pending ids."""
        return [self.store.state(t, pending_ids_limit) for t in RECORD_TYPES]

    # --- the hardware making errors ---------------------------------------------

    async def inject(self, injection: Injection) -> InjectOutcome:
        """Create all of the injection's records now, in one store change."""
        return await self._create(injection, injection.count)

    def start_paced(self, injection: Injection) -> int:
        """Create the records in the background at injection.rate_per_second; the run's id."""
        self._paced.difference_update({t for t in self._paced if t.done()})
        if self._closed:
            raise RequestError(
                grpc.StatusCode.UNAVAILABLE, "PCPU_STOPPING", f"pCPU {self.pcpu} is stopping"
            )
        if len(self._paced) >= MAX_PACED_INJECTIONS:
            raise RequestError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "TOO_MANY_PACED_INJECTIONS",
                f"pCPU {self.pcpu} already runs {len(self._paced)} paced injections "
                f"(at most {MAX_PACED_INJECTIONS}); cancel one (CancelInjection) or wait",
            )
        run = _PacedRun(next(self._injection_ids), injection, self._wall_ns())
        self._emit(
            "injection_started",
            injection_id=run.injection_id,
            type=type_name(injection.record_type),
            count=injection.count,
            rate=injection.rate_per_second,
        )
        # The end event comes from the done callback: it is emitted even for a task
        # cancelled before its first step.
        run.task = asyncio.get_running_loop().create_task(self._run_paced(run))
        run.task.add_done_callback(functools.partial(self._paced_ended, run))
        self._paced.add(run.task)
        self._runs[run.injection_id] = run
        return run.injection_id

    @property
    def paced_injections(self) -> int:
        """Paced injections still running."""
        return sum(1 for t in self._paced if not t.done())

    def injections(self) -> list[PacedInjectionState]:
        """The paced injections running now (not those being cancelled), oldest first."""
        return [r.state() for r in self._runs.values() if not r.cancelled]

    async def cancel_paced(self, injection_id: int) -> PacedInjectionState:
        """Stop a paced injection; returns once it makes no more records, with what it made.

        An id that is not running (never was, finished, or already cancelled) is
        NOT_FOUND.
        """
        run = self._runs.get(injection_id)
        if run is None or run.cancelled or run.task is None or run.task.done():
            raise RequestError(
                grpc.StatusCode.NOT_FOUND,
                "INJECTION_NOT_FOUND",
                f"pCPU {self.pcpu} runs no paced injection {injection_id} "
                "(finished, cancelled, or never started; ListInjections shows those running)",
                {"injection_id": str(injection_id)},
            )
        run.cancelled = True
        self._stop_run(run)
        await asyncio.wait({run.task})
        return run.state()

    async def wait_paced(self) -> None:
        """Wait until every paced injection has finished (or was cancelled)."""
        while self._paced:
            await asyncio.gather(*self._paced, return_exceptions=True)

    async def _run_paced(self, run: _PacedRun) -> None:
        rate, count = run.injection.rate_per_second, run.injection.count
        start = self.clock.now()
        batch_at = start - PACE_TICK
        try:
            while run.created < count and not run.stopping:
                due = min(count, math.floor(rate * (self.clock.now() - start) + 1e-6) + 1)
                if due > run.created:
                    batch_at = self.clock.now()
                    run.in_batch = True
                    try:
                        outcome = await self._create(run.injection, due - run.created)
                    finally:
                        run.in_batch = False
                    run.created += outcome.count
                    run.stored += outcome.stored
                    run.overflowed += outcome.overflowed
                if run.created < count and not run.stopping:
                    # Until the next record is due, but batches at least PACE_TICK apart.
                    # Measured from the last batch, not from now: a timer that fires a
                    # little early (uvloop's, whose clock is read once per loop pass) must
                    # not push the record a whole tick late.
                    wake = max(start + run.created / rate, batch_at + PACE_TICK)
                    await self.clock.sleep(max(1e-6, wake - self.clock.now()))
        except Exception:
            log.exception(
                "pCPU %d: paced injection %d failed after %d records",
                self.pcpu,
                run.injection_id,
                run.created,
            )

    @staticmethod
    def _stop_run(run: _PacedRun) -> None:
        """End a run at its next pause, never inside a batch.

        A batch whose store commit has begun completes (a durable store does not
        undo it), so it must also raise its interrupts, emit its event and be
        counted: the run sees ``stopping`` after it. A run between batches is
        cancelled at once.
        """
        run.stopping = True
        if run.task is not None and not run.in_batch:
            run.task.cancel()

    def _paced_ended(self, run: _PacedRun, task: asyncio.Task[None]) -> None:
        self._paced.discard(task)
        self._runs.pop(run.injection_id, None)
        kind = "injection_cancelled" if run.cancelled else "injection_finished"
        fields: dict[str, object] = {
            "injection_id": run.injection_id,
            "type": type_name(run.injection.record_type),
            "count": run.injection.count,
            "created": run.created,
            "stored": run.stored,
            "overflowed": run.overflowed,
        }
        if not run.cancelled:
            fields["complete"] = run.created == run.injection.count
        self._emit(kind, **fields)

    async def _create(self, injection: Injection, count: int) -> InjectOutcome:
        if injection.raw is not None:
            make_raw = records.given_raw_factory(injection.raw)
        else:
            make_raw = records.raw_factory(
                self.pcpu, injection.record_type, injection.severity, injection.sections
            )
        wall_ns = self._wall_ns()
        hop_trace.mark("pcpu.create")
        outcome = await self.store.create(
            injection.record_type,
            injection.severity,
            count,
            make_raw,
            (wall_ns, self.clock.now_ns()),
        )
        if outcome.interrupt_ids:
            self.line.raise_interrupts(injection.record_type, outcome.interrupt_ids, wall_ns)
        name = type_name(injection.record_type)
        given = {"raw_record": True} if injection.raw is not None else {}
        self._emit(
            "records_created",
            type=name,
            first_record_id=outcome.first_record_id,
            last_record_id=outcome.last_record_id,
            count=outcome.count,
            stored=outcome.stored,
            overflowed=outcome.overflowed,
            **given,
        )
        if outcome.overflowed:
            self._emit(
                "overflow",
                type=name,
                count=outcome.overflowed,
                flagged_record_id=outcome.flagged_record_id,
                total_overflowed=self.store.state(injection.record_type).counters.overflowed,
            )
        return outcome

    # --- lifecycle --------------------------------------------------------------

    def stop_inputs(self) -> None:
        """Cancel paced injections and end every interrupt stream (first step of a stop)."""
        self._closed = True
        for run in self._runs.values():
            self._stop_run(run)
        self.line.close()

    async def close(self) -> None:
        """Stop inputs, wait for the paced tasks to end and for in-flight commits."""
        self.stop_inputs()
        await self.wait_paced()
        await self.store.drain()

    def _wall_ns(self) -> int:
        return round(self.clock.wall() * 1e9)

    def _emit(self, kind: str, **fields: object) -> None:
        if self.events is not None:
            self.events.emit(kind, pcpu=self.pcpu, **fields)
