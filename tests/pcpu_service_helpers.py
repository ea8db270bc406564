"""A SalService on a real in-process gRPC server on port 0, for the pCPU service tests:
``make_pcpu`` starts one (on a FakeClock, its events recorded), ``pcpu`` is one with the
defaults, ``until`` waits for a condition (refusals: tests/refusals.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
import pytest

from xenmca.pcpu.server import PcpuServer, create_server
from xenmca.record.v1 import record_pb2
from xenmca.rpc.channels import open_channel
from xenmca.rpc.clock import FakeClock
from xenmca.rpc.events import Event, EventLog
from xenmca.sal.v1 import sal_service_pb2 as sal
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

CMC = record_pb2.RECORD_TYPE_CMC
CPE = record_pb2.RECORD_TYPE_CPE
MCA = record_pb2.RECORD_TYPE_MCA


@dataclass
class Pcpu:
    server: PcpuServer
    stub: sal_grpc.SalServiceStub
    events: list[Event]
    log: EventLog
    clock: FakeClock

    async def describe(self, record_type: int = CMC) -> sal.RecordTypeState:
        reply = await self.stub.DescribePcpu(sal.DescribePcpuRequest())
        return next(t for t in reply.types if t.type == record_type)

    async def inject(
        self, count: int = 1, record_type: int = CMC, **kw: object
    ) -> sal.InjectErrorResponse:
        return await self.stub.InjectError(
            sal.InjectErrorRequest(type=record_type, count=count, **kw)  # type: ignore[arg-type]
        )


PcpuFactory = Callable[..., Awaitable[Pcpu]]


@pytest.fixture
async def make_pcpu() -> AsyncIterator[PcpuFactory]:
    started: list[tuple[PcpuServer, grpc.aio.Channel]] = []

    async def make(pcpu: int = 5, **options: object) -> Pcpu:
        events = EventLog("pcpu-test")
        seen: list[Event] = []
        events.subscribe(seen.append)
        clock = FakeClock()
        server, port = create_server(
            "127.0.0.1:0",
            pcpu,
            events=events,
            clock=clock,
            **options,  # type: ignore[arg-type]
        )
        await server.start()
        channel = open_channel(f"127.0.0.1:{port}")
        started.append((server, channel))
        return Pcpu(server, sal_grpc.SalServiceStub(channel), seen, events, clock)

    yield make
    for server, channel in started:
        await channel.close()
        await server.stop(None)


@pytest.fixture
async def pcpu(make_pcpu: PcpuFactory) -> Pcpu:
    return await make_pcpu()


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Poll a condition that has no event of its own (the server noticing a cancelled call)."""

    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 - gRPC offers no hook for this
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), within)
