"""The launcher's way into the hosts' namespaces: 127.0.0.1 ports that forward into them, so
the testbed's own checks reach every host even while its link is cut.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor

from xenmca.testbed.infra.netns import CLONE_NEWNET, NETNS_RUN_DIR, NetworkLayout

log = logging.getLogger(__name__)


def _enter_namespace(path: str) -> None:
    """Move the calling thread into the network namespace at path (its new sockets live there)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({path}): {os.strerror(errno)}")
    finally:
        os.close(fd)


def _new_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    return sock


class LoopbackGateway:
    """127.0.0.1 ports in the launcher's namespace that forward into host namespaces.

    Each forwarded connection is opened from inside the target host's namespace
    to the host's own address (so it never crosses the switch and works while
    the host is cut off). One thread per namespace, parked in it, makes the
    sockets; the data is copied on the event loop.
    """

    CONNECT_TIMEOUT = 5.0

    def __init__(self, layout: NetworkLayout) -> None:
        self.layout = layout
        self.routes: dict[str, tuple[str, str, int]] = {}
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()

    def _executor(self, host: str) -> ThreadPoolExecutor:
        if host not in self._executors:
            path = str(NETNS_RUN_DIR / self.layout.namespace_of(host))
            self._executors[host] = ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix=f"netns-{host}",
                initializer=_enter_namespace,
                initargs=(path,),
            )
        return self._executors[host]

    async def open(self, host: str, port: int, local_port: int = 0) -> str:
        """A loopback address whose connections reach host's address:port: "127.0.0.1:N".

        N is local_port when that is free, otherwise (or when 0) any free port.
        """
        address = self.layout.address_of(host)
        executor = self._executor(host)

        async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            try:
                await self._forward(executor, (address, port), reader, writer)
            finally:
                self._connections.discard(task)

        try:
            server = await asyncio.start_server(forward, "127.0.0.1", local_port)
        except OSError:
            if not local_port:
                raise
            server = await asyncio.start_server(forward, "127.0.0.1", 0)
        self._servers.append(server)
        local = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self.routes[local] = (host, address, port)
        return local

    async def _forward(
        self,
        executor: ThreadPoolExecutor,
        target: tuple[str, int],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            sock = await loop.run_in_executor(executor, _new_socket)
            try:
                async with asyncio.timeout(self.CONNECT_TIMEOUT):
                    await loop.sock_connect(sock, target)
            except BaseException:
                sock.close()
                raise
            up_reader, up_writer = await asyncio.open_connection(sock=sock)
        except Exception as exc:
            log.debug("gateway: cannot reach %s:%d: %s", *target, exc)
            writer.close()
            return
        try:
            await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        for executor in self._executors.values():
            executor.shutdown(wait=False, cancel_futures=True)
        self._executors.clear()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()
