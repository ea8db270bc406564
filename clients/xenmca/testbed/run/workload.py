"""The error workload: a deterministic plan of InjectError calls, and the driver that sends them.

`plan_injections(scenario)` (workload_plan) turns streams into Poisson arrivals (one record per
call), storms into one paced injection per pCPU, bursts into one unpaced
injection per pCPU (all its records created at once) and real records
(`workload.records`) into one injection of their raw bytes each, the same plan
for the same seed. `WorkloadDriver` sends the plan to the pCPUs at the planned
times: one task per pCPU, so a slow or restarting pCPU delays only its own calls; a call
that finds the pCPU UNAVAILABLE is retried a few times, and what still fails is
counted (and logged as an event), never raised.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import grpc

from xenmca.rpc.channels import open_channel
from xenmca.rpc.clock import Clock, MonotonicClock
from xenmca.rpc.events import EventLog
from xenmca.rpc.retry import BackoffPolicy, RetryPolicy, call_with_retry
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.testbed.run.workload_plan import SEVERITY_VALUES, PlannedInjection
from xenmca.vocab import TYPES_BY_NAME

log = logging.getLogger(__name__)


@dataclass
class TypeSummary:
    """Per record type: records asked for, accepted by the pCPUs, and not injected."""

    requested: int = 0
    accepted: int = 0
    failed: int = 0


@dataclass
class WorkloadSummary:
    """What the driver did. requested = accepted + failed records (per type too)."""

    planned_calls: int = 0
    sent_calls: int = 0
    failed_calls: int = 0
    retries: int = 0
    requested_records: int = 0
    accepted_records: int = 0
    failed_records: int = 0
    overflowed_records: int = 0  # reported by immediate (rate 0) injections
    per_type: dict[str, TypeSummary] = field(default_factory=dict)
    # Largest delay of a call behind its planned time, in seconds.
    max_lag_s: float = 0.0
    # Clock readings at the start and end of run().
    started_at: float = 0.0
    finished_at: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "planned_calls": self.planned_calls,
            "sent_calls": self.sent_calls,
            "failed_calls": self.failed_calls,
            "retries": self.retries,
            "requested_records": self.requested_records,
            "accepted_records": self.accepted_records,
            "failed_records": self.failed_records,
            "overflowed_records": self.overflowed_records,
            "per_type": {
                name: {"requested": t.requested, "accepted": t.accepted, "failed": t.failed}
                for name, t in sorted(self.per_type.items())
            },
            "max_lag_s": self.max_lag_s,
        }


# InjectError is not idempotent (each call creates records): only UNAVAILABLE, where
# the call most likely never reached the pCPU, is retried; after DEADLINE_EXCEEDED
# the pCPU may have created the records already.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})

DEFAULT_ATTEMPTS = 12
"""Tries of one injection. A scenario's kill restarts its target after restart_after_s
(1 s by default), and a host takes a while to serve again on a busy machine; with
delays of 0.25, 0.5, then 1 s, twelve tries wait 9.75 s for it. Four, as before,
waited 1.75 s, while a killed host serves again about 1.5 s after the kill on a quiet
machine."""


class _IdleWhileSleeping:
    """The driver's clock, whose sleepers count as idle for WorkloadDriver.wait_idle()."""

    def __init__(self, driver: WorkloadDriver) -> None:
        self._driver = driver

    def now(self) -> float:
        return self._driver.clock.now()

    def now_ns(self) -> int:
        return self._driver.clock.now_ns()

    def wall(self) -> float:
        return self._driver.clock.wall()

    def busy(self) -> AbstractContextManager[None]:
        return self._driver.clock.busy()

    async def sleep(self, seconds: float) -> None:
        self._driver._set_busy(-1)
        try:
            await self._driver.clock.sleep(seconds)
        finally:
            self._driver._set_busy(+1)


class WorkloadDriver:
    """Sends a plan's injections to the pCPUs at their times (relative to run()'s start).

    addresses maps pCPU -> "host:port"; metadata carries the operator's token.
    An injection whose pCPU has no address, or that still fails after
    ``attempts`` tries, is counted as failed and reported as a
    ``workload_failed`` event.
    """

    def __init__(
        self,
        plan: Sequence[PlannedInjection],
        addresses: Mapping[int, str],
        metadata: Sequence[tuple[str, str]] = (),
        events: EventLog | None = None,
        clock: Clock | None = None,
        *,
        attempts: int = DEFAULT_ATTEMPTS,
        retry_backoff_s: float = 0.25,
        call_timeout_s: float = 10.0,
        channel_factory: Callable[[str], grpc.aio.Channel] = open_channel,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not retry_backoff_s > 0:
            raise ValueError("retry_backoff_s must be > 0")
        self.plan = sorted(plan)
        self.addresses = dict(addresses)
        self.metadata = tuple(metadata)
        self.events = events
        self.clock: Clock = clock or MonotonicClock()
        self.attempts = attempts
        self.retry_backoff_s = retry_backoff_s
        self.call_timeout_s = call_timeout_s
        # Only attempts bound a call (no overall deadline); delays double, unjittered,
        # up to four times the first.
        self._retry = RetryPolicy(
            attempt_timeout=call_timeout_s,
            overall_timeout=math.inf,
            max_attempts=attempts,
            backoff=BackoffPolicy(
                initial=retry_backoff_s,
                maximum=retry_backoff_s * 2 ** min(2, max(0, attempts - 2)),
                jitter="none",
            ),
        )
        self._sleeper = _IdleWhileSleeping(self)
        self.channel_factory = channel_factory
        self.summary = WorkloadSummary()
        self._done = 0
        self._progress: Callable[[float], None] | None = None
        # pCPU tasks not asleep on the clock (running or waiting for a reply).
        self._busy = 0
        self._started = False
        self._changed = asyncio.Event()

    @property
    def duration_s(self) -> float:
        """Planned time of the last call (storms run on after it for their own duration)."""
        return self.plan[-1].t_s if self.plan else 0.0

    async def run(self, progress: Callable[[float], None] | None = None) -> WorkloadSummary:
        """Send every injection at its time; returns the summary (also self.summary).

        progress, when given, is called with the fraction (0..1) of the plan's
        calls finished (sent or failed) after each call, and with 1.0 at the end.
        """
        summary = self.summary = WorkloadSummary(planned_calls=len(self.plan))
        for injection in self.plan:
            counts = summary.per_type.setdefault(injection.type, TypeSummary())
            counts.requested += injection.count
            summary.requested_records += injection.count
        self._done = 0
        self._progress = progress
        by_pcpu: dict[int, list[PlannedInjection]] = defaultdict(list)
        for injection in self.plan:
            by_pcpu[injection.pcpu].append(injection)
        channels: dict[str, grpc.aio.Channel] = {}
        start = summary.started_at = self.clock.now()
        self._busy = len(by_pcpu)
        self._started = True
        self._changed.set()
        try:
            tasks = []
            for pcpu, injections in sorted(by_pcpu.items()):
                address = self.addresses.get(pcpu)
                stub = None
                if address is not None:
                    if address not in channels:
                        channels[address] = self.channel_factory(address)
                    stub = sal_grpc.SalServiceStub(channels[address])
                tasks.append(asyncio.create_task(self._drive_pcpu(pcpu, stub, injections, start)))
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await asyncio.gather(
                *(channel.close() for channel in channels.values()), return_exceptions=True
            )
            summary.finished_at = self.clock.now()
            self._busy = 0
            self._changed.set()
        if progress is not None:
            progress(1.0)
        return summary

    async def _drive_pcpu(
        self,
        pcpu: int,
        stub: sal_grpc.SalServiceStub | None,
        injections: list[PlannedInjection],
        start: float,
    ) -> None:
        try:
            for injection in injections:
                await self._inject_at(pcpu, stub, injection, start)
        finally:
            self._set_busy(-1)

    async def _inject_at(
        self,
        pcpu: int,
        stub: sal_grpc.SalServiceStub | None,
        injection: PlannedInjection,
        start: float,
    ) -> None:
        wait = start + injection.t_s - self.clock.now()
        if wait > 0:
            await self._sleeper.sleep(wait)
        self.summary.max_lag_s = max(
            self.summary.max_lag_s, self.clock.now() - start - injection.t_s
        )
        if stub is None:
            self._failed(injection, 0, "NO_ADDRESS", f"no address for pCPU {pcpu}")
        else:
            await self._send(stub, injection)
        self._done += 1
        if self._progress is not None and self.plan:
            self._progress(self._done / len(self.plan))

    async def _send(self, stub: sal_grpc.SalServiceStub, injection: PlannedInjection) -> None:
        request = sal_pb2.InjectErrorRequest(
            type=TYPES_BY_NAME[injection.type],  # type: ignore[arg-type]
            severity=SEVERITY_VALUES[injection.severity],  # type: ignore[arg-type]
            count=injection.count,
            rate_per_second=injection.rate,
            raw_record=injection.raw,
        )
        attempts = 0

        async def inject(attempt_timeout: float) -> sal_pb2.InjectErrorResponse:
            nonlocal attempts
            attempts += 1
            return await stub.InjectError(request, timeout=attempt_timeout, metadata=self.metadata)

        def retried(attempt: int, exc: BaseException) -> None:
            self.summary.retries += 1
            if self.events is not None and isinstance(exc, grpc.aio.AioRpcError):
                self.events.emit(
                    "workload_retry",
                    pcpu=injection.pcpu,
                    type=injection.type.upper(),
                    attempt=attempt,
                    code=exc.code().name,
                )

        try:
            reply, attempts = await call_with_retry(
                inject,
                self._retry,
                retryable=RETRYABLE,
                clock=self._sleeper,
                on_retry=retried,
            )
        except grpc.aio.AioRpcError as exc:
            self._failed(injection, attempts, exc.code().name, exc.details() or "")
            return
        except Exception as exc:  # a broken channel must not stop the workload
            self._failed(injection, attempts, type(exc).__name__, str(exc))
            return
        self._injected(injection, attempts, reply)

    def _set_busy(self, delta: int) -> None:
        self._busy += delta
        self._changed.set()

    @property
    def idle(self) -> bool:
        """run() has started and every pCPU task is asleep until its next time, or done."""
        return self._started and self._busy == 0

    async def wait_idle(self) -> None:
        """Wait until idle: every call due by now was made (its outcome counted).

        With a FakeClock: advance it, then wait_idle(), then look at what was sent.
        """
        while not self.idle:
            self._changed.clear()
            await self._changed.wait()

    def _injected(
        self, injection: PlannedInjection, attempts: int, reply: sal_pb2.InjectErrorResponse
    ) -> None:
        summary = self.summary
        summary.sent_calls += 1
        summary.accepted_records += reply.accepted
        summary.per_type[injection.type].accepted += reply.accepted
        if injection.rate == 0:
            summary.overflowed_records += reply.overflowed
        if self.events is not None:
            self.events.emit(
                "workload_injected",
                pcpu=injection.pcpu,
                type=injection.type.upper(),
                severity=injection.severity,
                count=injection.count,
                rate=injection.rate,
                accepted=reply.accepted,
                overflowed=reply.overflowed,
                first_record_id=reply.first_record_id,
                last_record_id=reply.last_record_id,
                planned_t_s=injection.t_s,
                source=injection.source,
                attempts=attempts,
            )

    def _failed(self, injection: PlannedInjection, attempts: int, code: str, details: str) -> None:
        summary = self.summary
        summary.failed_calls += 1
        summary.failed_records += injection.count
        summary.per_type[injection.type].failed += injection.count
        log.warning(
            "workload: pCPU %d: %s x%d not injected (%s: %s)",
            injection.pcpu,
            injection.type,
            injection.count,
            code,
            details,
        )
        if self.events is not None:
            self.events.emit(
                "workload_failed",
                pcpu=injection.pcpu,
                type=injection.type.upper(),
                severity=injection.severity,
                count=injection.count,
                rate=injection.rate,
                planned_t_s=injection.t_s,
                source=injection.source,
                attempts=attempts,
                code=code,
                error=details,
            )
