"""FlowBed: pCPU servers and the coordinator in this process, on port 0, and a client channel.

Everything runs on the test's event loop with real gRPC servers; a test drives the
pCPUs (``inject``), reads their stores (``pending``), calls the coordinator as any
identity (``hv``, ``md``) and waits on the events (``watch``), never on sleeps.
dom0 is the test's business here: a `ScriptedDom0` step by step, or a real logger
(``xenmca.testing.dom0``). The project's own coordinator tests use it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc

from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
from xenmca.pcpu.server import DEFAULT_GRACE, PcpuHost, PcpuServer, build_pcpu_server
from xenmca.record.v1 import record_pb2
from xenmca.rpc.channels import open_channel
from xenmca.rpc.events import EventLog
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook, call_metadata
from xenmca.rpc.server import BuiltServer
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.testing.coordinator import start_coordinator
from xenmca.testing.events import EventWatch
from xenmca.xen.coordinator import Coordinator

DOMU = "domU-1"
"""An identity that is neither dom0 nor the operator: another domain."""
CMC = record_pb2.RECORD_TYPE_CMC
CPE = record_pb2.RECORD_TYPE_CPE

Metadata = tuple[tuple[str, str], ...]


def make_tokens() -> TokenBook:
    """Fresh tokens for dom0, the operator, xen and one other domain (DOMU)."""
    return TokenBook.generate(DOM0, OPERATOR, XEN, DOMU)


@dataclass
class FlowBed:
    """Running pCPUs (``host``) and the coordinator attached to them, with a client channel."""

    tokens: TokenBook = field(repr=False)  # never shown in a test's output
    host: PcpuHost
    coordinator: Coordinator
    built: BuiltServer
    xen_address: str
    channel: grpc.aio.Channel
    watch: EventWatch
    sal_channels: dict[int, grpc.aio.Channel] = field(default_factory=dict)

    @property
    def hv(self) -> hv_grpc.HypervisorServiceStub:
        """The coordinator's HypervisorService (pass ``metadata=bed.md(...)``)."""
        return hv_grpc.HypervisorServiceStub(self.channel)

    def md(self, identity: str) -> Metadata:
        """Call metadata presenting identity's token."""
        return call_metadata(self.tokens.token_for(identity))

    @property
    def dom0_md(self) -> Metadata:
        return self.md(DOM0)

    def sal(self, pcpu: int) -> sal_grpc.SalServiceStub:
        """pCPU's SalService (its channel is opened once and closed with the bed)."""
        if pcpu not in self.sal_channels:
            self.sal_channels[pcpu] = open_channel(self.host.addresses[pcpu])
        return sal_grpc.SalServiceStub(self.sal_channels[pcpu])

    async def inject(
        self, pcpu: int, count: int = 1, record_type: int = CMC, rate: float = 0.0
    ) -> sal_pb2.InjectErrorResponse:
        """pCPU's hardware makes count records (paced at rate per second when given)."""
        return await self.sal(pcpu).InjectError(
            sal_pb2.InjectErrorRequest(
                type=record_type,  # type: ignore[arg-type]
                count=count,
                rate_per_second=rate,
            ),
            metadata=self.md(OPERATOR),
        )

    async def pending(self, pcpu: int, record_type: int = CMC) -> sal_pb2.RecordTypeState:
        """pCPU's store of record_type now: pending, cleared, overflowed and so on."""
        state = await self.sal(pcpu).DescribePcpu(
            sal_pb2.DescribePcpuRequest(), metadata=self.md(OPERATOR)
        )
        return next(t for t in state.types if t.type == record_type)

    async def wait_connected(self) -> None:
        """Until the coordinator has connected to every pCPU's interrupt line."""
        await self.watch.wait_for("pcpu_connected", count=len(self.coordinator.links))

    async def stop_pcpu(self, pcpu: int) -> PcpuServer:
        """Stop pCPU's server (its records stay in its firmware); restart it with restart_pcpu."""
        server = self.host.servers[pcpu]
        await server.built.server.stop(0)
        return server

    async def restart_pcpu(self, old: PcpuServer) -> None:
        """Serve the same firmware (same records) on the same address again."""
        server = build_pcpu_server(old.address, old.firmware, token_book=self.tokens)
        await server.start()
        self.host.servers[old.pcpu] = server

    async def close(self) -> None:
        """Close the client channels, then stop the coordinator's server and the coordinator."""
        await self.channel.close()
        for channel in self.sal_channels.values():
            await channel.close()
        await self.built.server.stop(0)
        await self.coordinator.stop()


@asynccontextmanager
async def running_pcpus(
    pcpus: int,
    tokens: TokenBook,
    watch: EventWatch | None = None,
    *,
    sal_mode: str = "extended",
    capacity: int | None = None,
    stop_grace: float | None = DEFAULT_GRACE,
) -> AsyncIterator[PcpuHost]:
    """A pCPU host serving pCPUs 0 to pcpus - 1, each on its own port 0; stopped on the way out.

    Firmware in sal_mode, ``capacity`` records per type (the host's default when
    None); with a watch, the firmware's events go to it (component ``pcpu``).
    ``stop_grace`` is the seconds calls in progress get at the end (None: none).
    """
    events = None
    if watch is not None:
        events = EventLog("pcpu")
        events.subscribe(watch)
    options: dict[str, Any] = {} if capacity is None else {"capacity": capacity}
    host = PcpuHost(range(pcpus), token_book=tokens, sal_mode=sal_mode, events=events, **options)
    await host.start()
    try:
        yield host
    finally:
        await host.stop(stop_grace)


@asynccontextmanager
async def attached_coordinator(
    host: PcpuHost, tokens: TokenBook, watch: EventWatch, **config: Any
) -> AsyncIterator[FlowBed]:
    """The coordinator for host's pCPUs, connected to every one; stopped on the way out.

    ``config`` holds CoordinatorConfig fields (vcpu0_pcpu, policy, throttle, ...);
    the firmware mode is the host's.
    """
    coordinator, built, address = await start_coordinator(
        host.addresses, tokens, watch, sal_mode=host.sal_mode.value, **config
    )
    bed = FlowBed(tokens, host, coordinator, built, address, open_channel(address), watch)
    try:
        await bed.wait_connected()
        yield bed
    finally:
        await bed.close()


@asynccontextmanager
async def flow_bed(
    pcpus: int = 2,
    sal_mode: str = "extended",
    *,
    capacity: int | None = None,
    watch: EventWatch | None = None,
    pcpu_events: bool = False,
    **config: Any,
) -> AsyncIterator[FlowBed]:
    """pCPU servers (firmware in sal_mode), a coordinator told the same, a client channel.

    ``config`` holds CoordinatorConfig fields. The coordinator's events go to
    ``watch`` (a new one when None), and the pCPUs' too with ``pcpu_events``.
    """
    tokens = make_tokens()
    watch = watch if watch is not None else EventWatch()
    host_watch = watch if pcpu_events else None
    async with (
        running_pcpus(pcpus, tokens, host_watch, sal_mode=sal_mode, capacity=capacity) as host,
        attached_coordinator(host, tokens, watch, **config) as bed,
    ):
        yield bed
