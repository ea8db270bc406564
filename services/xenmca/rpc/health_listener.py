"""A plaintext listener serving only grpc.health.v1, for probes that present no certificate.

With mutual TLS on a server's own port, Kubernetes' native gRPC probes and the
image's HEALTHCHECK (both plaintext) cannot reach its health service. A
component started with ``--health-listen HOST:PORT`` also serves the standard
health service there, and nothing else (no reflection, no xenmca service):
``""`` answers SERVING once the component's servers are serving, NOT_SERVING
while it stops. Like every xenmca server it admits a few Watch streams at once
(xenmca.rpc.stream_limit) and refuses undecodable requests with INVALID_ARGUMENT.
"""

from __future__ import annotations

import argparse

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from xenmca.rpc.dispatch import ServerHandlers
from xenmca.rpc.server import GenericHandlersOnly, split_host_port
from xenmca.rpc.stream_limit import StreamLimit

FLAG = "--health-listen"


def add_health_listen_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        FLAG,
        metavar="HOST:PORT",
        help="also serve only grpc.health.v1, in plaintext, on HOST:PORT (probes under TLS)",
    )


def check_health_listen(address: str | None) -> str | None:
    """address, or ValueError naming the flag when it is not HOST:PORT."""
    if address is not None:
        try:
            split_host_port(address)
        except ValueError as exc:
            raise ValueError(f"{FLAG}: {exc}") from None
    return address


class HealthListener:
    """The health-only plaintext server; bound by the constructor, ``await start()`` to serve."""

    def __init__(self, address: str) -> None:
        host, _ = split_host_port(address)
        self.streams = StreamLimit()
        self.server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        self.health = health.aio.HealthServicer()
        collected = GenericHandlersOnly()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, collected)  # type: ignore[arg-type]
        self.server.add_generic_rpc_handlers((ServerHandlers(collected.handlers, self.streams),))
        self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"could not bind {FLAG} {address}")
        self.address = f"{host}:{self.port}"

    async def start(self) -> None:
        """Listen; reports NOT_SERVING until set_serving(True)."""
        await self.set_serving(False)
        await self.server.start()

    async def set_serving(self, serving: bool) -> None:
        await self.health.set(
            "",
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING,
        )

    async def stop(self, grace: float | None = 0.5) -> None:
        await self.set_serving(False)
        await self.server.stop(grace)
