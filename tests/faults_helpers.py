"""Shared by the fault injection tests: the SalService method names, a pCPU host with a
FaultInjector on a SignallingClock (``pcpus``, its fixture), and ``injected`` to read an
injected fault's ErrorInfo.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from flow_harness import CMC, EventWatch

from xenmca.fault.v1 import fault_service_pb2 as fault_pb2
from xenmca.fault.v1 import fault_service_pb2_grpc as fault_grpc
from xenmca.pcpu.server import PcpuHost
from xenmca.rpc.channels import open_channel
from xenmca.rpc.clock import FakeClock
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.events import EventLog
from xenmca.rpc.fault_rules import (
    INJECTED_FAULT,
)
from xenmca.rpc.faults import FaultInjector
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook, call_metadata
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

CLEAR = "xenmca.sal.v1.SalService/ClearStateInfo"
DESCRIBE = "xenmca.sal.v1.SalService/DescribePcpu"
SIZE = "xenmca.sal.v1.SalService/GetStateInfoSize"
WATCH = "xenmca.sal.v1.SalService/WatchInterrupts"


class SignallingClock(FakeClock):
    """A FakeClock that tells the test when something starts sleeping on it."""

    def __init__(self) -> None:
        super().__init__()
        self.slept = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.slept.set()
        await super().sleep(seconds)


@dataclass
class Host:
    host: PcpuHost
    tokens: TokenBook
    clock: SignallingClock
    watch: EventWatch
    channels: dict[int, grpc.aio.Channel]

    def md(self, identity: str | None) -> tuple[tuple[str, str], ...]:
        return call_metadata(self.tokens.token_for(identity) if identity else None)

    def channel(self, pcpu: int) -> grpc.aio.Channel:
        if pcpu not in self.channels:
            self.channels[pcpu] = open_channel(self.host.addresses[pcpu])
        return self.channels[pcpu]

    def sal(self, pcpu: int) -> sal_grpc.SalServiceStub:
        return sal_grpc.SalServiceStub(self.channel(pcpu))

    def faults(self, pcpu: int = 0) -> fault_grpc.FaultServiceStub:
        return fault_grpc.FaultServiceStub(self.channel(pcpu))

    async def add(self, via: int = 0, **rule: object) -> str:
        """Add a rule through pCPU via's FaultService (all of the host's servers share it)."""
        reply = await self.faults(via).AddFault(
            fault_pb2.AddFaultRequest(rule=fault_pb2.FaultRule(**rule)),  # type: ignore[arg-type]
            metadata=self.md(OPERATOR),
        )
        return str(reply.fault_id)

    async def inject(self, pcpu: int, count: int = 1) -> sal_pb2.InjectErrorResponse:
        return await self.sal(pcpu).InjectError(
            sal_pb2.InjectErrorRequest(type=CMC, count=count), metadata=self.md(OPERATOR)
        )

    async def cmc(self, pcpu: int) -> sal_pb2.RecordTypeState:
        state = await self.sal(pcpu).DescribePcpu(sal_pb2.DescribePcpuRequest())
        return next(t for t in state.types if t.type == CMC)


@pytest.fixture
async def pcpus() -> AsyncIterator[Host]:
    tokens = TokenBook.generate(DOM0, OPERATOR, XEN)
    clock = SignallingClock()
    events = EventLog("pcpu")
    watch = EventWatch()
    events.subscribe(watch)
    host = PcpuHost([0, 1], token_book=tokens, events=events, faults=FaultInjector(clock))
    await host.start()
    bed = Host(host, tokens, clock, watch, {})
    try:
        yield bed
    finally:
        for channel in bed.channels.values():
            await channel.close()
        await host.stop(grace=None)


def injected(exc: grpc.aio.AioRpcError) -> dict[str, str]:
    assert exc.code() == grpc.StatusCode.UNAVAILABLE
    info = error_info_of(exc)
    assert info is not None and info.reason == INJECTED_FAULT
    return dict(info.metadata)
