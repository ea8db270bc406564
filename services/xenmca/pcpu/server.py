"""gRPC servers for simulated pCPUs: one server per pCPU, many per process.

``create_server`` is the seam tests and in-process testbeds use: like the other
services' ``create_server`` it returns a bound, not yet started server and its
port (``await server.start()``; ``await server.stop(grace)``). ``PcpuHost``
hosts a set of pCPUs in one process, each on its own port, sharing one durable
database, one event log and one FaultInjector (per-RPC fault rules: every
pCPU's server applies them for its own pCPU and serves FaultService).
Both take ``sal_mode`` (SalMode, "extended" by default, or "plain"): which SAL
procedures the firmware offers; ``build_pcpu_server`` serves whatever mode its
PcpuFirmware was built with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import grpc

from xenmca.pcpu.durable import FirmwareDatabase
from xenmca.pcpu.firmware import PcpuFirmware
from xenmca.pcpu.model import DEFAULT_CAPACITY, SalMode
from xenmca.pcpu.servicer import SERVICE_NAME, SalServicer, add_to_server
from xenmca.pcpu.store import RecordStore
from xenmca.rpc.clock import Clock
from xenmca.rpc.events import EventLog
from xenmca.rpc.faults import FaultInjector
from xenmca.rpc.identity import TokenBook
from xenmca.rpc.lifecycle import StartError
from xenmca.rpc.server import BuiltServer, ServiceBinding, build_server, split_host_port

DEFAULT_GRACE = 1.0


class PcpuServer:
    """One pCPU's gRPC server (SalService, health, reflection) and its firmware."""

    def __init__(
        self,
        firmware: PcpuFirmware,
        built: BuiltServer,
        host: str,
        owned_database: FirmwareDatabase | None = None,
    ) -> None:
        self.firmware = firmware
        self.built = built
        self.server = built.server
        self.port = built.port
        self.address = join_host_port(host, built.port)
        self._owned_database = owned_database
        self._stopped = False

    @property
    def pcpu(self) -> int:
        return self.firmware.pcpu

    @property
    def faults(self) -> FaultInjector | None:
        """The fault rules this server applies (shared by its host), if it has any."""
        return self.built.faults

    async def start(self) -> None:
        """Listen, and report SERVING on the health service."""
        await self.built.start()

    async def stop(self, grace: float | None = DEFAULT_GRACE) -> None:
        """Graceful stop (idempotent): NOT_SERVING, end interrupt streams and paced
        injections, let unary calls finish within grace, then close the store."""
        if self._stopped:
            return
        self._stopped = True
        await self.built.set_serving(False)
        self.firmware.stop_inputs()
        await self.server.stop(grace)
        await self.firmware.close()
        if self._owned_database is not None:
            self._owned_database.close()

    async def wait_for_termination(self) -> None:
        await self.server.wait_for_termination()


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def build_pcpu_server(
    address: str,
    firmware: PcpuFirmware,
    *,
    token_book: TokenBook | None = None,
    owned_database: FirmwareDatabase | None = None,
    faults: FaultInjector | None = None,
    events: EventLog | None = None,
    credentials: grpc.ServerCredentials | None = None,
) -> PcpuServer:
    """A bound, not yet started, server for firmware on address (port 0: any free port).

    With ``faults`` it applies those fault rules for this pCPU and serves
    FaultService (operator-only when callers are identified); fired faults go
    to ``events``. With ``credentials`` it serves mutual TLS only.
    """
    host, _ = split_host_port(address)
    servicer = SalServicer(firmware, token_book)
    built = build_server(
        address,
        [ServiceBinding(SERVICE_NAME, lambda server: add_to_server(servicer, server))],
        faults=faults,
        pcpu=firmware.pcpu,
        tokens=token_book,
        events=events,
        credentials=credentials,
    )
    return PcpuServer(firmware, built, host, owned_database)


def create_server(
    address: str,
    pcpu: int = 0,
    *,
    capacity: int = DEFAULT_CAPACITY,
    state_dir: Path | None = None,
    store: RecordStore | None = None,
    token_book: TokenBook | None = None,
    events: EventLog | None = None,
    clock: Clock | None = None,
    faults: FaultInjector | None = None,
    credentials: grpc.ServerCredentials | None = None,
    sal_mode: SalMode | str = SalMode.EXTENDED,
) -> tuple[PcpuServer, int]:
    """A SalService server for one pCPU bound to address; returns (server, bound port).

    Not started: ``await server.start()``. Its store is ``store`` if given, else a
    durable store in ``state_dir/firmware.sqlite`` (owned: closed by
    ``server.stop()``) or an in-memory one. Call from the event loop that will
    run the server. It applies per-RPC fault rules from ``faults`` (a new
    injector on ``clock`` when not given; ``server.faults``) and serves FaultService.
    With ``credentials`` (``xenmca.rpc.tls.server_credentials``) it serves mutual TLS only.
    ``sal_mode`` "plain" offers only what real SAL offers (see SalMode).
    """
    mode = SalMode(sal_mode)
    if faults is None:
        faults = FaultInjector(clock)
    database: FirmwareDatabase | None = None
    if store is None:
        if state_dir is not None:
            database = FirmwareDatabase(state_dir)
        backend = database.backend(pcpu) if database is not None else None
        store = RecordStore(pcpu, capacity, backend)
    firmware = PcpuFirmware(store, events=events, clock=clock, sal_mode=mode)
    try:
        server = build_pcpu_server(
            address,
            firmware,
            token_book=token_book,
            owned_database=database,
            faults=faults,
            events=events,
            credentials=credentials,
        )
    except BaseException:
        if database is not None:
            database.close()
        raise
    return server, server.port


class HostStartError(StartError):
    """A pCPU host that could not start; the message names the pCPU and address."""


class PcpuHost:
    """Many pCPUs in one process: pCPU i on base_port + i (base_port None: port 0 each).

    ``ports`` names the port of some pCPUs explicitly (it wins over base_port).

    With ``state_dir`` every pCPU's store lives in one database file there
    (``firmware.sqlite``, one ``pcpu`` column), restored on the next start.

    ``faults`` (a new FaultInjector on ``clock`` when not given) holds the
    host's per-RPC fault rules, shared by all its pCPU servers; each server
    applies them for its own pCPU and serves FaultService to change them.

    With ``credentials`` every pCPU's server serves mutual TLS only.

    ``sal_mode`` (SalMode or its value, "extended" by default) is every hosted
    pCPU's firmware mode; "plain" offers only what real SAL offers.
    """

    def __init__(
        self,
        pcpus: Sequence[int],
        *,
        host: str = "127.0.0.1",
        base_port: int | None = None,
        ports: Mapping[int, int] | None = None,
        capacity: int = DEFAULT_CAPACITY,
        state_dir: Path | None = None,
        token_book: TokenBook | None = None,
        events: EventLog | None = None,
        clock: Clock | None = None,
        faults: FaultInjector | None = None,
        credentials: grpc.ServerCredentials | None = None,
        sal_mode: SalMode | str = SalMode.EXTENDED,
    ) -> None:
        if not pcpus:
            raise ValueError("a pCPU host needs at least one pCPU")
        if len(set(pcpus)) != len(pcpus):
            raise ValueError("pCPU numbers must be distinct")
        self.pcpus = tuple(sorted(pcpus))
        self.host = host
        self.base_port = base_port
        self.ports = dict(ports or {})
        self.capacity = capacity
        self.state_dir = state_dir
        self.token_book = token_book
        self.events = events
        self.clock = clock
        self.faults = faults if faults is not None else FaultInjector(clock)
        self.credentials = credentials
        self.sal_mode = SalMode(sal_mode)
        self.servers: dict[int, PcpuServer] = {}
        self._database: FirmwareDatabase | None = None

    @property
    def addresses(self) -> dict[int, str]:
        """pCPU -> "host:port" of every started server."""
        return {pcpu: server.address for pcpu, server in self.servers.items()}

    def address_for(self, pcpu: int) -> str:
        if pcpu in self.ports:
            port = self.ports[pcpu]
        else:
            port = 0 if self.base_port is None else self.base_port + pcpu
        return join_host_port(self.host, port)

    async def start(self) -> dict[int, str]:
        """Bind every pCPU's server, start them all concurrently; returns the addresses.

        If any pCPU cannot start, the ones already started are stopped and
        HostStartError names the one that failed.
        """
        if self.state_dir is not None:
            self._database = FirmwareDatabase(self.state_dir)
        try:
            for pcpu in self.pcpus:
                backend = self._database.backend(pcpu) if self._database is not None else None
                store = RecordStore(pcpu, self.capacity, backend)
                firmware = PcpuFirmware(
                    store, events=self.events, clock=self.clock, sal_mode=self.sal_mode
                )
                address = self.address_for(pcpu)
                try:
                    server = build_pcpu_server(
                        address,
                        firmware,
                        token_book=self.token_book,
                        faults=self.faults,
                        events=self.events,
                        credentials=self.credentials,
                    )
                except (OSError, RuntimeError) as exc:
                    raise HostStartError(f"pCPU {pcpu}: cannot listen on {address}: {exc}") from exc
                self.servers[pcpu] = server
            await asyncio.gather(*(server.start() for server in self.servers.values()))
        except BaseException:
            await self.stop(grace=None)
            raise
        return self.addresses

    async def stop(self, grace: float | None = DEFAULT_GRACE) -> None:
        """Stop every server concurrently (gracefully within grace), then close the database."""
        await asyncio.gather(*(server.stop(grace) for server in self.servers.values()))
        if self._database is not None:
            self._database.close()
            self._database = None

    async def __aenter__(self) -> PcpuHost:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
