"""Shared by the stream limit tests: a pCPU server on 127.0.0.1 port 0 (``pcpu_server``),
a WatchInterrupts call on its own channel (``Watcher``), ``inject``, ``refusal`` (a
refused call's code and reason) and ``until`` for server-side state with no event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import grpc
import pytest
from flow_harness import CMC

from xenmca.pcpu.server import PcpuServer, create_server
from xenmca.rpc.errors import error_info_of
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

Metadata = tuple[tuple[str, str], ...]
TIMEOUT = 10.0


def refusal(error: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str | None]:
    info = error_info_of(error)
    return error.code(), info.reason if info is not None else None


async def until(condition: Callable[[], bool], within: float = TIMEOUT) -> None:
    """For server-side state that has no event of its own (a subscriber leaving)."""

    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 - gRPC offers no hook for this
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), within)


@asynccontextmanager
async def pcpu_server(**options: object) -> AsyncIterator[tuple[PcpuServer, str]]:
    server, port = create_server("127.0.0.1:0", 0, **options)  # type: ignore[arg-type]
    await server.start()
    try:
        yield server, f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


class Watcher:
    """One WatchInterrupts call on its own channel."""

    def __init__(
        self, address: str, metadata: Metadata = (), options: tuple[tuple[str, int], ...] = ()
    ) -> None:
        self.channel = grpc.aio.insecure_channel(address, options=options)
        self.call = sal_grpc.SalServiceStub(self.channel).WatchInterrupts(
            sal_pb2.WatchInterruptsRequest(), metadata=metadata
        )

    async def subscribed(self) -> bool:
        """True once the pCPU registered the subscription; False when it refused the call."""
        await self.call.initial_metadata()
        return not self.call.done()

    async def refusal(self) -> tuple[grpc.StatusCode, str | None]:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await self.call.read()
        return refusal(raised.value)

    async def read(self, n: int) -> list[int]:
        ids = []
        async with asyncio.timeout(TIMEOUT):
            for _ in range(n):
                message = await self.call.read()
                assert message is not grpc.aio.EOF
                ids.append(message.record_id)
        return ids

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close()


async def inject(address: str, count: int, metadata: Metadata = ()) -> sal_pb2.InjectErrorResponse:
    async with grpc.aio.insecure_channel(address) as channel:
        return await sal_grpc.SalServiceStub(channel).InjectError(
            sal_pb2.InjectErrorRequest(type=CMC, count=count), metadata=metadata, timeout=TIMEOUT
        )
