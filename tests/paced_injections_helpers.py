"""Real pCPU servers on port 0 with a fake clock, for the paced injection tests:
``make_pcpu`` starts one, ``pcpu`` is one with the defaults (refusals: tests/refusals.py).
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
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook, call_metadata
from xenmca.sal.v1 import sal_service_pb2 as sal
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

CMC = record_pb2.RECORD_TYPE_CMC
CPE = record_pb2.RECORD_TYPE_CPE


Metadata = tuple[tuple[str, str], ...]


@dataclass
class Pcpu:
    server: PcpuServer
    stub: sal_grpc.SalServiceStub
    events: list[Event]
    log: EventLog
    clock: FakeClock
    tokens: TokenBook

    @property
    def operator(self) -> Metadata:
        return call_metadata(self.tokens.token_for(OPERATOR))

    async def inject(
        self, count: int, rate: float, record_type: int = CMC, **fields: object
    ) -> sal.InjectErrorResponse:
        request = sal.InjectErrorRequest(
            type=record_type,  # type: ignore[arg-type]
            count=count,
            rate_per_second=rate,
            **fields,  # type: ignore[arg-type]
        )
        return await self.stub.InjectError(request, metadata=self.operator)

    async def listed(self) -> list[sal.PacedInjection]:
        reply = await self.stub.ListInjections(sal.ListInjectionsRequest(), metadata=self.operator)
        return list(reply.injections)

    async def cancel(self, injection_id: int) -> sal.PacedInjection:
        reply = await self.stub.CancelInjection(
            sal.CancelInjectionRequest(injection_id=injection_id), metadata=self.operator
        )
        return reply.injection

    async def state(self, record_type: int = CMC) -> sal.RecordTypeState:
        reply = await self.stub.DescribePcpu(sal.DescribePcpuRequest())
        return next(t for t in reply.types if t.type == record_type)

    async def until_events(self, kind: str, n: int) -> None:
        """Wait until the pCPU has emitted n events of kind."""
        reached = asyncio.Event()

        def check(_: Event | None = None) -> None:
            if sum(1 for e in self.events if e["kind"] == kind) >= n:
                reached.set()

        unsubscribe = self.log.subscribe(check)
        try:
            check()
            await asyncio.wait_for(reached.wait(), 5)
        finally:
            unsubscribe()

    def kinds(self, kind: str) -> list[Event]:
        return [e for e in self.events if e["kind"] == kind]


PcpuFactory = Callable[..., Awaitable[Pcpu]]


@pytest.fixture
async def make_pcpu() -> AsyncIterator[PcpuFactory]:
    started: list[tuple[PcpuServer, grpc.aio.Channel]] = []

    async def make(**options: object) -> Pcpu:
        events = EventLog("pcpu-test")
        seen: list[Event] = []
        events.subscribe(seen.append)
        clock = FakeClock()
        tokens = TokenBook.generate(DOM0, OPERATOR, XEN)
        server, port = create_server(
            "127.0.0.1:0",
            3,
            events=events,
            clock=clock,
            token_book=tokens,
            **options,  # type: ignore[arg-type]
        )
        await server.start()
        channel = open_channel(f"127.0.0.1:{port}")
        started.append((server, channel))
        return Pcpu(server, sal_grpc.SalServiceStub(channel), seen, events, clock, tokens)

    yield make
    for server, channel in started:
        await channel.close()
        await server.stop(None)


@pytest.fixture
async def pcpu(make_pcpu: PcpuFactory) -> Pcpu:
    return await make_pcpu()
