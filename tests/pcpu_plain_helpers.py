"""Real in-process SalService servers on port 0 in either SAL mode, for the plain-mode tests:
``make_pcpu`` starts one (with or without identities), ``tokens`` is a token book for
dom0, the operator and Xen (refusals: tests/refusals.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
import pytest

from xenmca.pcpu.model import MAX_PENDING_IDS_LIMIT, SalMode
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


@dataclass
class Pcpu:
    """One started pCPU server, a stub on it, and the events it emitted."""

    server: PcpuServer
    stub: sal_grpc.SalServiceStub
    events: list[Event]
    tokens: TokenBook | None

    def as_(self, identity: str | None) -> tuple[tuple[str, str], ...]:
        """Call metadata presenting identity's token (none in development mode)."""
        if identity is None or self.tokens is None:
            return ()
        return call_metadata(self.tokens.token_for(identity))

    async def describe(
        self, identity: str | None = OPERATOR, limit: int = 0
    ) -> sal.DescribePcpuResponse:
        return await self.stub.DescribePcpu(
            sal.DescribePcpuRequest(pending_ids_limit=limit), metadata=self.as_(identity)
        )

    async def state(self, record_type: int = CMC) -> sal.RecordTypeState:
        reply = await self.describe(limit=MAX_PENDING_IDS_LIMIT)
        return next(t for t in reply.types if t.type == record_type)

    async def inject(self, count: int, record_type: int = CMC) -> sal.InjectErrorResponse:
        return await self.stub.InjectError(
            sal.InjectErrorRequest(type=record_type, count=count),  # type: ignore[arg-type]
            metadata=self.as_(OPERATOR),
        )

    async def clear(self, record_type: int = CMC, **kw: int) -> sal.ClearStateInfoResponse:
        return await self.stub.ClearStateInfo(
            sal.ClearStateInfoRequest(type=record_type, **kw),  # type: ignore[arg-type]
            metadata=self.as_(XEN),
        )

    async def get(self, record_type: int = CMC) -> sal.GetStateInfoResponse:
        return await self.stub.GetStateInfo(
            sal.GetStateInfoRequest(type=record_type),  # type: ignore[arg-type]
            metadata=self.as_(XEN),
        )

    async def mask(self, masked: bool, record_type: int = CMC) -> sal.SetInterruptMaskResponse:
        return await self.stub.SetInterruptMask(
            sal.SetInterruptMaskRequest(type=record_type, masked=masked),  # type: ignore[arg-type]
            metadata=self.as_(XEN),
        )

    def kinds(self, kind: str) -> list[Event]:
        return [e for e in self.events if e["kind"] == kind]


PcpuFactory = Callable[..., Awaitable[Pcpu]]


@pytest.fixture
async def make_pcpu() -> AsyncIterator[PcpuFactory]:
    started: list[tuple[PcpuServer, grpc.aio.Channel]] = []

    async def make(
        sal_mode: SalMode | str | None = None, tokens: TokenBook | None = None, **options: object
    ) -> Pcpu:
        events = EventLog("pcpu-plain-test")
        seen: list[Event] = []
        events.subscribe(seen.append)
        if sal_mode is not None:
            options["sal_mode"] = sal_mode
        server, port = create_server(
            "127.0.0.1:0",
            3,
            events=events,
            clock=FakeClock(),
            token_book=tokens,
            **options,  # type: ignore[arg-type]
        )
        await server.start()
        channel = open_channel(f"127.0.0.1:{port}")
        started.append((server, channel))
        return Pcpu(server, sal_grpc.SalServiceStub(channel), seen, tokens)

    yield make
    for server, channel in started:
        await channel.close()
        await server.stop(None)


@pytest.fixture
def tokens() -> TokenBook:
    return TokenBook.generate(DOM0, OPERATOR, XEN)
