"""SAL calls the coordinator makes on a pCPU: locally (vCPU0's pCPU) or by IPI, with retries.

Both kinds are RPCs to the pCPU's SalService in this testbed, and they differ as
on hardware: an IPI can be lost, late or fail, so IPI calls are retried (GET is
idempotent, CLEAR is made idempotent by record id) and per-RPC fault rules apply
to them; a local SAL call has no IPI, so it is made once and is marked local
(``x-xenmca-sal-path``), which fault rules never touch. A policy that replays
Xen's single smp_call_function_single attempt gives IPIs one attempt too.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from xenmca.rpc import hop_trace
from xenmca.rpc.clock import Clock
from xenmca.rpc.events import EventLog
from xenmca.rpc.retry import RETRYABLE_CODES, RetryPolicy, call_with_retry
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.xen.counters import Counters
from xenmca.xen.links import PcpuLink

T = TypeVar("T")


@functools.cache
def _trace_points(call: str) -> tuple[str, str]:
    """The hop trace's points around a SAL call (xenmca.rpc.hop_trace), built once."""
    return f"xen.ipi.{call}.send", f"xen.ipi.{call}.reply"


CallObserver = Callable[[str, bool, float, bool], None]
"""Told of each finished call: ("get" or "clear", by IPI, seconds with retries, succeeded)."""


@dataclass(frozen=True)
class CallOutcome:
    """What one retried call did: its reply or its final error, attempts, path."""

    by_ipi: bool
    attempts: int
    elapsed_ms: float
    reply: object | None = None
    error: grpc.StatusCode | None = None


class SalCaller:
    """Makes GET/CLEAR on pCPUs for the coordinator, counting local calls, IPIs and retries."""

    def __init__(
        self,
        policy: RetryPolicy,
        counters: Counters,
        events: EventLog,
        clock: Clock,
        observer: CallObserver | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.counters = counters
        self.events = events
        self.observer = observer
        # A local SAL call has no IPI to lose: it is made once.
        self.local_policy = RetryPolicy(
            attempt_timeout=policy.attempt_timeout,
            overall_timeout=policy.attempt_timeout,
            max_attempts=1,
        )

    def policy_for(self, by_ipi: bool) -> RetryPolicy:
        return self.policy if by_ipi else self.local_policy

    async def get(
        self, link: PcpuLink, record_type: int, by_ipi: bool
    ) -> tuple[sal_pb2.GetStateInfoResponse | None, CallOutcome]:
        request = sal_pb2.GetStateInfoRequest(type=record_type)  # type: ignore[arg-type]
        # GET is idempotent.
        return await self.call(
            link,
            by_ipi,
            lambda timeout: link.stub.GetStateInfo(
                request, timeout=timeout, metadata=link.sal_metadata(by_ipi)
            ),
            "get",
        )

    async def clear(
        self, link: PcpuLink, record_type: int, record_id: int | None, by_ipi: bool
    ) -> tuple[sal_pb2.ClearStateInfoResponse | None, CallOutcome]:
        """SAL_CLEAR_STATE_INFO: exactly record_id (extended firmware), or the current record."""
        request = sal_pb2.ClearStateInfoRequest(type=record_type)  # type: ignore[arg-type]
        if record_id is not None:
            request.record_id = record_id
        # By record id this CLEAR is idempotent. Without one (fw_emul.c's queue-head
        # CLEAR) it is not: a retry after a lost reply clears the next current record.
        # It is retried all the same under ipi=retry: that is the replayed design's hazard.
        return await self.call(
            link,
            by_ipi,
            lambda timeout: link.stub.ClearStateInfo(
                request, timeout=timeout, metadata=link.sal_metadata(by_ipi)
            ),
            "clear",
        )

    # -- counting, for calls made of several SAL procedures (xenmca.xen.firmware) ----

    def count(self, by_ipi: bool) -> None:
        """One logical call starts, locally or by IPI."""
        if by_ipi:
            self.counters.ipi_calls += 1
        else:
            self.counters.local_calls += 1

    def retried(self, link: PcpuLink, attempt: int, error: grpc.StatusCode | None) -> None:
        """Attempt number attempt failed with error and is being tried again."""
        self.counters.retries += 1
        self.events.emit(
            "call_retry", pcpu=link.pcpu, attempt=attempt, error=error.name if error else None
        )

    def finished(
        self,
        name: str,
        by_ipi: bool,
        started: float,
        attempts: int,
        reply: object | None,
        error: grpc.StatusCode | None = None,
    ) -> CallOutcome:
        """A logical call ended (reply None: every attempt failed, with error)."""
        elapsed = (time.perf_counter() - started) * 1000
        if reply is None:
            self.counters.call_failures += 1
        if self.observer is not None:
            self.observer(name, by_ipi, elapsed / 1000, reply is not None)
        return CallOutcome(by_ipi, attempts, elapsed, reply=reply, error=error)

    async def call(
        self, link: PcpuLink, by_ipi: bool, call: Callable[[float], Awaitable[T]], name: str
    ) -> tuple[T | None, CallOutcome]:
        """One logical call: call(attempt_timeout), retried as the path's policy says."""
        self.count(by_ipi)

        def on_retry(attempt: int, exc: BaseException) -> None:
            code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
            self.retried(link, attempt, code)

        attempts = 0
        send_point, reply_point = _trace_points(name)

        async def counted(attempt_timeout: float) -> T:
            nonlocal attempts
            attempts += 1
            hop_trace.mark(send_point)
            reply = await call(attempt_timeout)
            hop_trace.mark(reply_point)
            return reply

        started = time.perf_counter()
        try:
            reply, attempts = await call_with_retry(
                counted,
                self.policy_for(by_ipi),
                retryable=RETRYABLE_CODES,
                clock=self.clock,
                on_retry=on_retry,
            )
        except grpc.aio.AioRpcError as exc:
            return None, self.finished(name, by_ipi, started, attempts, None, exc.code())
        return reply, self.finished(name, by_ipi, started, attempts, reply)
