"""Building gRPC aio servers the same way everywhere: health, reflection, limits, port 0."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from xenmca.rpc import fault_service
from xenmca.rpc.dispatch import ServerHandlers
from xenmca.rpc.events import EventLog
from xenmca.rpc.fault_wrap import FaultWrapper
from xenmca.rpc.faults import FaultInjector
from xenmca.rpc.identity import TokenBook
from xenmca.rpc.stream_limit import DEFAULT_MAX_STREAMS, StreamLimit

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Largest request or reply any xenmca server accepts; SAL records are a few KiB."""


class GenericHandlersOnly:
    """Stands in for a server in the generated add_*_to_server calls and keeps only
    their generic handlers, not their "registered methods".

    gRPC keeps one waiting request per registered method in every server (about
    4 KiB each). A pCPU host runs one server per pCPU with SalService, health,
    reflection and FaultService: registered, their 17 methods would be ~70 KiB of
    every pCPU; as generic handlers they serve the same calls at the same speed.
    """

    def __init__(self) -> None:
        self.handlers: tuple[grpc.GenericRpcHandler, ...] = ()

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self.handlers += tuple(handlers)

    def add_registered_method_handlers(self, service: str, handlers: object) -> None:
        pass


@dataclass(frozen=True)
class ServiceBinding:
    """One servicer to add to a server: its full proto name and its add_*_to_server call."""

    full_name: str
    add: Callable[[grpc.aio.Server], None]


@dataclass
class BuiltServer:
    """A server bound to its port, with the health servicer that reports it."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: tuple[str, ...]
    faults: FaultInjector | None = None
    streams: StreamLimit | None = None

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def start(self) -> None:
        """Start listening, then report SERVING for "" and every service."""
        await self.server.start()
        await self.set_serving(True)

    async def stop(self, grace: float | None = 1.0) -> None:
        """Graceful stop: report NOT_SERVING, let calls finish within grace, then stop."""
        await self.set_serving(False)
        await self.server.stop(grace)


def split_host_port(address: str) -> tuple[str, int]:
    """Split "host:port" (or "[v6]:port"); raise ValueError naming the address when malformed."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"address {address!r} is not HOST:PORT")
    return host, int(port_text)


SERVER_KEEPALIVE_MS = 120_000
"""How often a server pings each client connection (about 34 pings/s for 4 096 pCPUs)."""


def build_server(
    address: str,
    services: Sequence[ServiceBinding],
    *,
    credentials: grpc.ServerCredentials | None = None,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    faults: FaultInjector | None = None,
    pcpu: int | None = None,
    tokens: TokenBook | None = None,
    events: EventLog | None = None,
    max_streams: int = DEFAULT_MAX_STREAMS,
) -> BuiltServer:
    """Create an aio server on address (port 0 picks a free port) with health and reflection.

    The caller starts it with ``await built.start()``, which also makes the health
    service report SERVING for every service (``built.server.start()`` alone
    leaves the health service answering NOT_FOUND).

    With ``faults``, the server applies that injector's per-RPC fault rules (a
    FaultWrapper, outermost, for ``pcpu`` when the server is one pCPU's) and
    serves FaultService over it, operator-only when callers are identified
    (``tokens`` given, or mutual TLS); fired faults are reported on ``events``.
    With ``credentials`` (``xenmca.rpc.tls.server_credentials``) the server
    listens with TLS only. Each streaming method (its own, health Watch,
    reflection) admits at most ``max_streams`` open calls (``built.streams``; see
    xenmca.rpc.stream_limit). Undecodable requests are refused with INVALID_ARGUMENT
    (xenmca.rpc.malformed). These wrappers are applied without server interceptors
    (xenmca.rpc.dispatch).
    """
    split_host_port(address)
    bindings = list(services)
    streams = StreamLimit(max_streams)
    wrapper = None
    if faults is not None:
        wrapper = FaultWrapper(faults, pcpu, events)
        servicer = fault_service.FaultServicer(faults, tokens, events)
        bindings.append(
            ServiceBinding(
                fault_service.SERVICE_NAME,
                lambda server: fault_service.add_to_server(servicer, server),
            )
        )
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
            # Accept the clients' keepalive pings (see channels.CHANNEL_OPTIONS).
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            # Ping the clients too, rarely: a client that vanished without closing (its
            # host cut off) must not keep one of the few stream slots (stream_limit) for
            # the default two hours.
            ("grpc.keepalive_time_ms", SERVER_KEEPALIVE_MS),
            ("grpc.keepalive_timeout_ms", 20_000),
        ],
    )
    collected = GenericHandlersOnly()
    for binding in bindings:
        binding.add(collected)  # type: ignore[arg-type]
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, collected)  # type: ignore[arg-type]
    names = tuple(b.full_name for b in bindings)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer(
            (
                *names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            )
        ),
        collected,  # type: ignore[arg-type]
    )
    server.add_generic_rpc_handlers((ServerHandlers(collected.handlers, streams, wrapper),))
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise OSError(f"could not bind {address}")
    if faults is not None:
        faults.serve(pcpu, names)
    return BuiltServer(
        server=server,
        port=port,
        health=health_servicer,
        service_names=names,
        faults=faults,
        streams=streams,
    )
