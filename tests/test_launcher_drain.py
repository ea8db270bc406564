"""The drain knows when to stop: FirmwareReader against a real in-process pCPU host, in
extended and plain SAL mode (idle windows, clears, timeouts, an empty store, a pCPU that
never answers, and the log holding every cleared record).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import grpc
import pytest

from xenmca.pcpu.firmware import Injection
from xenmca.pcpu.server import PcpuHost
from xenmca.record.v1 import record_pb2
from xenmca.rpc.channels import open_channel
from xenmca.rpc.identity import OPERATOR, TokenBook, call_metadata
from xenmca.testbed.run.sampler import FirmwareReader


@dataclass
class Directory:
    """The pCPUs of an in-process host, as FirmwareReader needs them."""

    addresses: Mapping[int, str]
    token_book: TokenBook
    extra: dict[int, str] = field(default_factory=dict)

    @property
    def pcpu_addresses(self) -> Mapping[int, str]:
        return {**self.addresses, **self.extra}

    def channel(self, address: str) -> grpc.aio.Channel:
        return open_channel(address)

    def operator_metadata(self) -> tuple[tuple[str, str], ...]:
        return call_metadata(self.token_book.token_for(OPERATOR))


@dataclass
class Host:
    host: PcpuHost
    directory: Directory

    async def inject(self, pcpu: int, count: int) -> None:
        firmware = self.host.servers[pcpu].firmware
        await firmware.inject(
            Injection(record_pb2.RECORD_TYPE_CMC, record_pb2.SEVERITY_CORRECTED, count)
        )

    async def clear_oldest(self, pcpu: int) -> None:
        await self.host.servers[pcpu].firmware.clear(record_pb2.RECORD_TYPE_CMC, None)


@pytest.fixture(params=["extended", "plain"])
async def host(request: pytest.FixtureRequest) -> AsyncIterator[Host]:
    tokens = TokenBook.generate()
    pcpu_host = PcpuHost(range(2), token_book=tokens, capacity=100, sal_mode=request.param)
    await pcpu_host.start()
    try:
        yield Host(pcpu_host, Directory(pcpu_host.addresses, tokens))
    finally:
        await pcpu_host.stop()


async def test_a_record_nobody_clears_ends_the_drain_once_idle(host: Host) -> None:
    await host.inject(1, 3)
    reader = FirmwareReader(host.directory)
    try:
        ended = await reader.drain(30.0, idle_s=0.5, interval=0.05)
        assert (ended.how, ended.drained, ended.pending, ended.missing) == ("idle", False, 3, [])
        assert 0.5 <= ended.waited_s < 5.0
        final, missing = await reader.read(pending_ids_limit=1000)
        cmc = {c.pcpu: c for c in final if c.type == "CMC"}
        assert missing == [] and cmc[0].pending == 0 and cmc[1].pending == 3
        assert len(cmc[1].pending_ids) == 3 and cmc[1].pending_ids_complete
        assert list(cmc[1].pending_ids) == sorted(cmc[1].pending_ids)
        assert cmc[0].pending_ids == () and cmc[0].pending_ids_complete
        cut, _ = await reader.read(pending_ids_limit=2)
        short = next(c for c in cut if c.pcpu == 1 and c.type == "CMC")
        assert short.pending_ids == cmc[1].pending_ids[:2] and not short.pending_ids_complete
    finally:
        await reader.close()


async def test_clears_keep_the_drain_going_until_nothing_is_pending(host: Host) -> None:
    """Each clear is progress: idle_s counts from the last change, not from the start."""
    await host.inject(0, 4)

    async def clear_slowly() -> None:
        for _ in range(4):
            await asyncio.sleep(0.3)
            await host.clear_oldest(0)

    clearing = asyncio.create_task(clear_slowly())
    reader = FirmwareReader(host.directory)
    try:
        ended = await reader.drain(30.0, idle_s=0.6, interval=0.05)
        await clearing
        assert (ended.how, ended.drained, ended.pending) == ("drained", True, 0)
        assert ended.waited_s >= 1.0  # longer than idle_s: the clears kept it going
    finally:
        clearing.cancel()
        await reader.close()


async def test_without_an_idle_window_the_drain_waits_for_its_timeout(host: Host) -> None:
    await host.inject(0, 1)
    reader = FirmwareReader(host.directory)
    try:
        ended = await reader.drain(0.4, interval=0.05)
        assert (ended.how, ended.drained, ended.pending) == ("timeout", False, 1)
        assert 0.4 <= ended.waited_s < 3.0
    finally:
        await reader.close()


async def test_an_empty_store_is_drained_at_once(host: Host) -> None:
    reader = FirmwareReader(host.directory)
    try:
        ended = await reader.drain(10.0, idle_s=0.5)
        assert (ended.how, ended.drained, ended.pending) == ("drained", True, 0)
        assert ended.waited_s < 0.5
    finally:
        await reader.close()


async def test_a_pcpu_that_never_answers_is_not_drained(host: Host) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    host.directory.extra[2] = dead
    reader = FirmwareReader(host.directory)
    try:
        ended = await reader.drain(30.0, idle_s=0.3, interval=0.05)
        assert (ended.how, ended.drained, ended.pending, ended.missing) == ("idle", False, 0, [2])
    finally:
        await reader.close()


async def test_the_drain_waits_for_the_log_to_hold_every_cleared_record(host: Host) -> None:
    """A dom0 that clears before it logs (linux-salinfo) still holds records when nothing is
    pending: the drain waits for its log, and a log that never catches up ends it as idle."""
    await host.inject(0, 2)
    await host.clear_oldest(0)
    await host.clear_oldest(0)
    in_log = [1]
    reader = FirmwareReader(host.directory)
    try:
        catch_up = asyncio.get_running_loop().call_later(0.4, in_log.__setitem__, 0, 2)
        ended = await reader.drain(30.0, idle_s=1.0, interval=0.05, logged=lambda: in_log[0])
        catch_up.cancel()
        assert (ended.how, ended.drained, ended.pending, ended.cleared, ended.logged) == (
            "drained",
            True,
            0,
            2,
            2,
        )
        assert 0.4 <= ended.waited_s < 1.0
        in_log[0] = 1
        ended = await reader.drain(30.0, idle_s=0.3, interval=0.05, logged=lambda: in_log[0])
        # Nothing pending (drained), but the log lacks a cleared record: it ended idle.
        assert (ended.how, ended.drained, ended.logged) == ("idle", True, 1)
        ended = await reader.drain(30.0, idle_s=0.3, interval=0.05, logged=lambda: None)
        assert (ended.how, ended.drained, ended.logged) == ("drained", True, None)
    finally:
        await reader.close()
