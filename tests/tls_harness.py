"""An in-process testbed over mutual TLS: generated certificates, pCPU servers, the coordinator.

Like flow_harness, everything runs on the test's event loop with real gRPC
servers on 127.0.0.1 port 0, but every server requires a client certificate
and every channel presents one (the identity is the certificate's CN).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from flow_harness import FAST_RETRY, EventWatch

from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
from xenmca.ops.pki import generate_test_pki
from xenmca.pcpu.server import PcpuHost
from xenmca.rpc.channels import open_channel
from xenmca.rpc.events import EventLog
from xenmca.rpc.identity import TOKEN_FILE_ENV, XEN, TokenBook, call_metadata
from xenmca.rpc.server import BuiltServer
from xenmca.rpc.tls import TlsFiles, channel_credentials, server_credentials
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.xen.coordinator import Coordinator, CoordinatorConfig
from xenmca.xen.service import create_server
from xenmca.xen.throttle_settings import PRESETS

DOMU = "domU-1"
IDENTITIES = ("dom0", "operator", "xen", "pcpu", DOMU)


def make_pki(directory: Path) -> dict[str, TlsFiles]:
    """The test PKI: dom0, operator, xen, pcpu and another domain, valid for 127.0.0.1."""
    return generate_test_pki(directory, IDENTITIES, ("127.0.0.1", "localhost"))


@dataclass
class TlsBed:
    pki: dict[str, TlsFiles]
    host: PcpuHost
    coordinator: Coordinator
    built: BuiltServer
    xen_address: str
    watch: EventWatch
    tokens: TokenBook | None = None
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def channel(self, address: str, identity: str | None) -> grpc.aio.Channel:
        """A channel to address presenting identity's certificate (None: TLS, no certificate)."""
        if identity is None:
            credentials = grpc.ssl_channel_credentials(self.pki["dom0"].ca.read_bytes())
        else:
            credentials = channel_credentials(self.pki[identity])
        channel = open_channel(address, credentials)
        self.channels.append(channel)
        return channel

    def hv(self, identity: str | None) -> hv_grpc.HypervisorServiceStub:
        return hv_grpc.HypervisorServiceStub(self.channel(self.xen_address, identity))

    def sal(self, pcpu: int, identity: str | None) -> sal_grpc.SalServiceStub:
        return sal_grpc.SalServiceStub(self.channel(self.host.addresses[pcpu], identity))

    def md(self, identity: str) -> tuple[tuple[str, str], ...]:
        """identity's bearer token as call metadata (empty without a token book)."""
        return call_metadata(self.tokens.token_for(identity) if self.tokens else None)


@asynccontextmanager
async def tls_bed(
    pki: dict[str, TlsFiles],
    pcpus: int = 2,
    *,
    tokens: TokenBook | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    **config: Any,
) -> AsyncIterator[TlsBed]:
    """pCPU servers (pcpu certificate) and a coordinator (xen certificate) over mutual TLS."""
    host = PcpuHost(range(pcpus), token_book=tokens, credentials=server_credentials(pki["pcpu"]))
    await host.start()
    watch = EventWatch()
    events = EventLog("xen")
    events.subscribe(watch)
    if on_event is not None:
        events.subscribe(on_event)
    coordinator = Coordinator(
        CoordinatorConfig(
            pcpus=host.addresses,
            xen_token=tokens.token_for(XEN) if tokens else None,
            channel_credentials=channel_credentials(pki["xen"]),
            retry=config.pop("retry", FAST_RETRY),
            throttle=config.pop("throttle", PRESETS["fast"]),
            **config,
        ),
        events=events,
    )
    built, port = create_server(
        "127.0.0.1:0", coordinator, tokens, credentials=server_credentials(pki["xen"])
    )
    await built.start()
    await coordinator.start()
    bed = TlsBed(pki, host, coordinator, built, f"127.0.0.1:{port}", watch, tokens)
    try:
        await watch.wait_for("pcpu_connected", count=pcpus)
        yield bed
    finally:
        for channel in bed.channels:
            await channel.close()
        await built.server.stop(0)
        await coordinator.stop()
        await host.stop(grace=None)


async def run_xenmca(*args: str, within: float = 60.0) -> tuple[int, str, str]:
    """`xenmca ARGS` as a real process (the test's loop keeps serving meanwhile)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "xenmca.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != TOKEN_FILE_ENV},
    )
    try:
        async with asyncio.timeout(within):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def tls_flags(files: TlsFiles) -> list[str]:
    return files.flags()
