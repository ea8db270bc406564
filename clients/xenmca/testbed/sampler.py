"""Watching a running testbed: the coordinator's queues sampled on a timer, pCPU stores drained."""

from __future__ import annotations

import asyncio
import contextlib
import time

import grpc

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.record.v1 import record_pb2
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.testbed.launcher import LocalTestbed
from xenmca.testbed.run_data import FirmwareCounts, Sample


def _type(value: int) -> str:
    return record_pb2.RecordType.Name(value).removeprefix("RECORD_TYPE_")  # type: ignore[arg-type]


def to_sample(state: hv_pb2.DescribeHypervisorResponse) -> Sample:
    depth = {_type(q.type): q.depth + (1 if q.HasField("in_flight") else 0) for q in state.queues}
    polling = [
        (line.pcpu, _type(line.type))
        for line in state.throttle
        if line.mode == hv_pb2.THROTTLE_MODE_POLLING
    ]
    return Sample(time.monotonic_ns(), depth, polling)


class Sampler:
    """Samples DescribeHypervisor every `interval` seconds until stopped."""

    def __init__(self, bed: LocalTestbed, interval: float = 0.25) -> None:
        self.bed = bed
        self.interval = interval
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
                self.samples.append(to_sample(self.latest))
            except grpc.aio.AioRpcError:
                self.samples.append(Sample(time.monotonic_ns(), {}, [], reachable=False))
            await asyncio.sleep(self.interval)


class FirmwareReader:
    """DescribePcpu on every pCPU, a bounded number at a time, over kept-open channels."""

    def __init__(self, bed: LocalTestbed, concurrency: int = 64) -> None:
        self.bed = bed
        self._channels = {pcpu: bed.channel(a) for pcpu, a in bed.pcpu_addresses.items()}
        self._limit = asyncio.Semaphore(concurrency)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._channels.values()))

    async def _describe(self, pcpu: int) -> sal_pb2.DescribePcpuResponse | None:
        async with self._limit:
            try:
                return await sal_grpc.SalServiceStub(self._channels[pcpu]).DescribePcpu(
                    sal_pb2.DescribePcpuRequest(),
                    timeout=5,
                    metadata=self.bed.operator_metadata(),
                )
            except grpc.aio.AioRpcError:
                return None

    async def read(self) -> tuple[list[FirmwareCounts], list[int]]:
        """Every pCPU's counts per type, and the pCPUs that did not answer."""
        replies = await asyncio.gather(*(self._describe(p) for p in self._channels))
        counts: list[FirmwareCounts] = []
        missing: list[int] = []
        for pcpu, reply in zip(self._channels, replies, strict=True):
            if reply is None:
                missing.append(pcpu)
                continue
            for t in reply.types:
                counts.append(
                    FirmwareCounts(
                        pcpu, _type(t.type), t.created, t.pending, t.cleared, t.overflowed
                    )
                )
        return counts, missing

    async def drain(self, within: float) -> tuple[bool, list[FirmwareCounts], list[int]]:
        """Wait until no pCPU has a record pending (or time runs out); return the last counts."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            counts, missing = await self.read()
            if not missing and all(c.pending == 0 for c in counts):
                return True, counts, missing
            if loop.time() >= deadline:
                return False, counts, missing
            await asyncio.sleep(0.25)
