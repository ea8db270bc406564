"""Watching a running testbed: the coordinator's queues sampled on a timer, pCPU stores drained.

The drain ends in one of three ways (`DrainResult.how`): ``drained`` (nothing
pending on any pCPU, and dom0's log holds at least as many records as were
cleared), ``idle`` (no pCPU's pending or cleared counts, nor the log's count,
changed for the idle window: what is left is stranded, and waiting longer would
not help), or ``timeout``.

The log condition matters for a dom0 that clears before it logs (linux-salinfo):
its records leave the firmware before they reach the log, and stopping it then
would lose what it holds in its volatile buffers, which no clean run does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.rpc.clock import Clock, MonotonicClock
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.testbed.infra.bed import Testbed
from xenmca.testbed.run.data import FirmwareCounts, Sample
from xenmca.vocab import type_name

FINAL_PENDING_IDS = 1000
"""Pending record ids per pCPU and type that the final firmware read asks for."""


def to_sample(state: hv_pb2.DescribeHypervisorResponse, t_mono_ns: int) -> Sample:
    depth = {
        type_name(q.type): q.depth + (1 if q.HasField("in_flight") else 0) for q in state.queues
    }
    polling = [
        (line.pcpu, type_name(line.type))
        for line in state.throttle
        if line.mode == hv_pb2.THROTTLE_MODE_POLLING
    ]
    return Sample(t_mono_ns, depth, polling)


class Sampler:
    """Samples DescribeHypervisor every `interval` seconds until stopped."""

    def __init__(self, bed: Testbed, interval: float = 0.25, clock: Clock | None = None) -> None:
        self.bed = bed
        self.interval = interval
        self.clock: Clock = clock or MonotonicClock()
        self.samples: list[Sample] = []
        self.latest: hv_pb2.DescribeHypervisorResponse | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                self.latest = await self.bed.describe(within=self.interval * 4)
                self.samples.append(to_sample(self.latest, self.clock.now_ns()))
            except grpc.aio.AioRpcError:
                self.samples.append(Sample(self.clock.now_ns(), {}, [], reachable=False))
            await self.clock.sleep(self.interval)


class PcpuDirectory(Protocol):
    """Where the pCPUs are and how to call them as the operator (a LocalTestbed is one)."""

    @property
    def pcpu_addresses(self) -> Mapping[int, str]: ...

    def channel(self, address: str) -> grpc.aio.Channel: ...

    def operator_metadata(self) -> Sequence[tuple[str, str]]: ...


@dataclass(frozen=True)
class DrainResult:
    """How a drain ended, and the last firmware counts it read."""

    how: str  # "drained" | "idle" | "timeout"
    counts: list[FirmwareCounts]
    missing: list[int]  # pCPUs that did not answer the last read
    waited_s: float
    logged: int | None = None  # records in dom0's log at the end; None: not known

    def event_fields(self) -> dict[str, object]:
        """The `drain_finished` event's fields."""
        return {
            "how": self.how,
            "pending": self.pending,
            "cleared": self.cleared,
            "logged": self.logged,
            "missing": self.missing,
            "waited_s": round(self.waited_s, 3),
        }

    @property
    def drained(self) -> bool:
        """Nothing is pending on any pCPU (and every pCPU answered)."""
        return not self.missing and self.pending == 0

    @property
    def pending(self) -> int:
        return sum(c.pending for c in self.counts)

    @property
    def cleared(self) -> int:
        return sum(c.cleared for c in self.counts)


def _progress(
    counts: Sequence[FirmwareCounts], missing: Sequence[int], logged: int | None
) -> tuple[object, ...]:
    """What changes while records are still being delivered: pending, cleared, logged."""
    return (
        tuple(sorted((c.pcpu, c.type, c.pending, c.cleared) for c in counts)),
        tuple(sorted(missing)),
        logged,
    )


class FirmwareReader:
    """DescribePcpu on every pCPU, a bounded number at a time, over kept-open channels."""

    def __init__(
        self, bed: PcpuDirectory, concurrency: int = 64, clock: Clock | None = None
    ) -> None:
        self.bed = bed
        self.clock: Clock = clock or MonotonicClock()
        self._channels = {pcpu: bed.channel(a) for pcpu, a in bed.pcpu_addresses.items()}
        self._limit = asyncio.Semaphore(concurrency)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._channels.values()))

    async def _describe(
        self, pcpu: int, pending_ids_limit: int
    ) -> sal_pb2.DescribePcpuResponse | None:
        async with self._limit:
            try:
                return await sal_grpc.SalServiceStub(self._channels[pcpu]).DescribePcpu(
                    sal_pb2.DescribePcpuRequest(pending_ids_limit=pending_ids_limit),
                    timeout=5,
                    metadata=self.bed.operator_metadata(),
                )
            except grpc.aio.AioRpcError:
                return None

    async def read(self, pending_ids_limit: int = 0) -> tuple[list[FirmwareCounts], list[int]]:
        """Every pCPU's counts per type, and the pCPUs that did not answer.

        With pending_ids_limit, each count also carries up to that many pending
        record ids (oldest first); pending_ids_complete says whether they are all.
        """
        replies = await asyncio.gather(
            *(self._describe(p, pending_ids_limit) for p in self._channels)
        )
        counts: list[FirmwareCounts] = []
        missing: list[int] = []
        for pcpu, reply in zip(self._channels, replies, strict=True):
            if reply is None:
                missing.append(pcpu)
                continue
            for t in reply.types:
                ids = tuple(t.pending_record_ids)
                counts.append(
                    FirmwareCounts(
                        pcpu,
                        type_name(t.type),
                        t.created,
                        t.pending,
                        t.cleared,
                        t.overflowed,
                        pending_ids=ids,
                        pending_ids_complete=t.pending <= len(ids),
                    )
                )
        return counts, missing

    async def drain(
        self,
        within: float,
        idle_s: float | None = None,
        interval: float = 0.25,
        logged: Callable[[], int | None] | None = None,
    ) -> DrainResult:
        """Read every `interval` s until all is delivered, nothing moved for idle_s, or within.

        All is delivered when nothing is pending and, when `logged` is given (a
        blocking function, run in a thread: records in dom0's log, None when it
        cannot tell), the log holds at least as many records as the firmware
        cleared. "Moved" is any pCPU's pending or cleared count or the logged
        count changing (or a pCPU starting or ceasing to answer); idle_s None
        waits for the timeout alone.
        """
        started = self.clock.now()
        deadline = started + within
        last_seen: tuple[object, ...] | None = None
        last_change = started
        while True:
            counts, missing = await self.read()
            in_log = await asyncio.to_thread(logged) if logged is not None else None
            now = self.clock.now()
            how = ""
            empty = not missing and all(c.pending == 0 for c in counts)
            if empty and (in_log is None or in_log >= sum(c.cleared for c in counts)):
                how = "drained"
            else:
                seen = _progress(counts, missing, in_log)
                if seen != last_seen:
                    last_seen, last_change = seen, now
                elif idle_s is not None and now - last_change >= idle_s:
                    how = "idle"
                if not how and now >= deadline:
                    how = "timeout"
            if how:
                return DrainResult(how, counts, missing, now - started, in_log)
            await self.clock.sleep(max(0.0, min(interval, deadline - now)))
