"""An in-process testbed for coordinator tests: pCPU servers, the coordinator, dom0 stubs.

Everything runs on the test's event loop with real gRPC servers on port 0;
tests wait on the coordinator's events, never on sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
from xenmca.pcpu.server import PcpuHost, PcpuServer, build_pcpu_server
from xenmca.record.v1 import record_pb2
from xenmca.rpc.channels import open_channel
from xenmca.rpc.events import Event, EventLog
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook, call_metadata
from xenmca.rpc.retry import BackoffPolicy, RetryPolicy
from xenmca.rpc.server import BuiltServer
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.xen.coordinator import Coordinator, CoordinatorConfig
from xenmca.xen.service import create_server
from xenmca.xen.throttle_settings import PRESETS

DOMU = "domU-1"
CMC = record_pb2.RECORD_TYPE_CMC
CPE = record_pb2.RECORD_TYPE_CPE
FAST_RETRY = RetryPolicy(
    attempt_timeout=0.5,
    overall_timeout=2.0,
    max_attempts=4,
    backoff=BackoffPolicy(initial=0.01, maximum=0.05, jitter="full"),
)


class EventWatch:
    """Collects events and lets a test await the first one that matches."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def matching(self, kind: str, **fields: Any) -> list[Event]:
        return [
            e
            for e in self.events
            if e["kind"] == kind and all(e.get(k) == v for k, v in fields.items())
        ]

    async def until(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_for(
        self, kind: str, count: int = 1, within: float = 10.0, **fields: Any
    ) -> None:
        await self.until(lambda: len(self.matching(kind, **fields)) >= count, within)


@dataclass
class FlowBed:
    tokens: TokenBook
    host: PcpuHost
    coordinator: Coordinator
    built: BuiltServer
    xen_address: str
    channel: grpc.aio.Channel
    watch: EventWatch
    sal_channels: dict[int, grpc.aio.Channel] = field(default_factory=dict)

    @property
    def hv(self) -> hv_grpc.HypervisorServiceStub:
        return hv_grpc.HypervisorServiceStub(self.channel)

    def md(self, identity: str) -> tuple[tuple[str, str], ...]:
        return call_metadata(self.tokens.token_for(identity))

    @property
    def dom0_md(self) -> tuple[tuple[str, str], ...]:
        return self.md(DOM0)

    def sal(self, pcpu: int) -> sal_grpc.SalServiceStub:
        if pcpu not in self.sal_channels:
            self.sal_channels[pcpu] = open_channel(self.host.addresses[pcpu])
        return sal_grpc.SalServiceStub(self.sal_channels[pcpu])

    async def inject(self, pcpu: int, count: int = 1, record_type: int = CMC, rate: float = 0.0):
        return await self.sal(pcpu).InjectError(
            sal_pb2.InjectErrorRequest(type=record_type, count=count, rate_per_second=rate),
            metadata=self.md(OPERATOR),
        )

    async def pending(self, pcpu: int, record_type: int = CMC) -> sal_pb2.RecordTypeState:
        state = await self.sal(pcpu).DescribePcpu(
            sal_pb2.DescribePcpuRequest(), metadata=self.md(OPERATOR)
        )
        return next(t for t in state.types if t.type == record_type)

    async def wait_connected(self) -> None:
        await self.watch.wait_for("pcpu_connected", count=len(self.coordinator.links))

    async def stop_pcpu(self, pcpu: int) -> PcpuServer:
        server = self.host.servers[pcpu]
        await server.built.server.stop(0)
        return server

    async def restart_pcpu(self, old: PcpuServer) -> None:
        """Serve the same firmware (same records) on the same address again."""
        server = build_pcpu_server(old.address, old.firmware, token_book=self.tokens)
        await server.start()
        self.host.servers[old.pcpu] = server


async def start_coordinator(
    addresses: dict[int, str], tokens: TokenBook, watch: EventWatch, **config: Any
) -> tuple[Coordinator, BuiltServer, str]:
    events = EventLog("xen")
    events.subscribe(watch)
    coordinator = Coordinator(
        CoordinatorConfig(
            pcpus=addresses,
            xen_token=tokens.token_for(XEN),
            retry=config.pop("retry", FAST_RETRY),
            throttle=config.pop("throttle", PRESETS["fast"]),
            **config,
        ),
        events=events,
    )
    built, port = create_server("127.0.0.1:0", coordinator, tokens)
    await built.start()
    await coordinator.start()
    return coordinator, built, f"127.0.0.1:{port}"


@asynccontextmanager
async def flow_bed(
    pcpus: int = 2, sal_mode: str = "extended", **config: Any
) -> AsyncIterator[FlowBed]:
    """pCPU servers (firmware in sal_mode), a coordinator told the same, a client channel."""
    tokens = TokenBook.generate(DOM0, OPERATOR, XEN, DOMU)
    host = PcpuHost(range(pcpus), token_book=tokens, sal_mode=sal_mode)
    await host.start()
    watch = EventWatch()
    coordinator, built, address = await start_coordinator(
        host.addresses, tokens, watch, sal_mode=sal_mode, **config
    )
    bed = FlowBed(tokens, host, coordinator, built, address, open_channel(address), watch)
    try:
        await bed.wait_connected()
        yield bed
    finally:
        await bed.channel.close()
        for channel in bed.sal_channels.values():
            await channel.close()
        await built.server.stop(0)
        await coordinator.stop()
        await host.stop()


class ScriptedDom0:
    """dom0 driven step by step by a test: attach, then GET/CLEAR by hand."""

    def __init__(self, bed: FlowBed, instance: str = "scripted") -> None:
        self.bed = bed
        self.call = bed.hv.AttachDom0(
            hv_pb2.AttachDom0Request(instance=instance), metadata=bed.dom0_md
        )

    async def next_interrupt(self) -> hv_pb2.AttachDom0Response:
        async with asyncio.timeout(10):
            return await self.call.read()

    async def get(self, record_type: int = CMC) -> hv_pb2.GetStateInfoResponse:
        return await self.bed.hv.GetStateInfo(
            hv_pb2.GetStateInfoRequest(type=record_type), metadata=self.bed.dom0_md
        )

    async def clear(
        self, record_id: int | None, record_type: int = CMC
    ) -> hv_pb2.ClearStateInfoResponse:
        request = hv_pb2.ClearStateInfoRequest(type=record_type)
        if record_id is not None:
            request.record_id = record_id
        return await self.bed.hv.ClearStateInfo(request, metadata=self.bed.dom0_md)

    async def detach(self) -> None:
        self.call.cancel()
