"""The log's health on its own and as served: a stop ends LogHealth's wait, the health
listener and the dom0 command's health listener follow the log, the page limit fails
commits as a full disk does, and the default commit backoff schedule.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import sys
from pathlib import Path

import pytest
from dom0_full_disk_helpers import (
    FULL,
    delays,
    fill,
    free,
)
from dom0_logger_helpers import (
    WAIT,
    Harness,
    make_record,
)
from dom0_logger_helpers import harness as harness
from grpc_health.v1 import health_pb2, health_pb2_grpc

from xenmca.dom0.log_health import DEFAULT_COMMIT_BACKOFF, LogHealth
from xenmca.dom0.log_store import LogStore
from xenmca.dom0.probes import LOG_SERVICE, Dom0Probes
from xenmca.rpc.channels import open_channel
from xenmca.rpc.clock import FakeClock
from xenmca.rpc.events import EventLog
from xenmca.rpc.health_listener import HealthListener
from xenmca.rpc.retry import Backoff

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_a_stop_ends_a_wait_for_the_next_attempt() -> None:
    clock = FakeClock(start=0.0)
    health = LogHealth(clock, EventLog("dom0"))
    health.commit_failed(sqlite3.OperationalError(FULL), "CMC")
    stopping = asyncio.Event()

    async def wait() -> bool:
        async with health.attempt(stopping) as go:
            return go

    waiting = asyncio.create_task(wait())
    await asyncio.sleep(0)
    stopping.set()
    assert await asyncio.wait_for(waiting, WAIT) is False


async def check(address: str, service: str = "") -> int:
    async with open_channel(address) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=WAIT
        )
    return int(answer.status)


async def until_health(address: str, expected: tuple[int, int]) -> None:
    """Watch "" and the log's service until they answer expected ("" is set last)."""
    async with open_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service, status in zip((LOG_SERVICE, ""), reversed(expected), strict=True):
            call = stub.Watch(health_pb2.HealthCheckRequest(service=service))
            try:
                async with asyncio.timeout(WAIT):
                    async for answer in call:
                        if answer.status == status:
                            break
            finally:
                call.cancel()


async def test_the_health_listener_follows_the_log() -> None:
    clock = FakeClock(start=0.0)
    health = LogHealth(clock, EventLog("dom0"))
    probes = Dom0Probes(HealthListener("127.0.0.1:0"), health)
    await probes.start()
    try:
        assert await check(probes.address) == NOT_SERVING  # not started yet
        await probes.serving()
        assert (await check(probes.address), await check(probes.address, LOG_SERVICE)) == (
            SERVING,
            SERVING,
        )
        health.commit_failed(sqlite3.OperationalError(FULL), "CMC")
        await until_health(probes.address, (NOT_SERVING, NOT_SERVING))
        health.commit_failed(sqlite3.OperationalError(FULL), "CMC")
        await clock.advance(10)
        health.commit_succeeded()
        await until_health(probes.address, (SERVING, SERVING))
    finally:
        await probes.stop()


async def test_dom0_command_serves_health_when_asked(
    harness: Harness, unused_tcp_port: int
) -> None:
    fake = harness.fake()
    port = await harness.serve(fake)
    health = f"127.0.0.1:{unused_tcp_port}"
    script = "import sys; from xenmca import cli; sys.exit(cli.main(['dom0', *sys.argv[1:]]))"
    base = [sys.executable, "-c", script, "--xen", f"127.0.0.1:{port}", "--no-cpe-poll"]
    bad = await asyncio.create_subprocess_exec(
        *base, "--db", str(harness.db_path), "--health-listen", "nope",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(bad.communicate(), WAIT)
    assert bad.returncode == 2
    assert (
        stderr.decode()
        .strip()
        .endswith("xenmca dom0: error: --health-listen: address 'nope' is not HOST:PORT")
    )

    proc = await asyncio.create_subprocess_exec(
        *base, "--db", str(harness.db_path), "--health-listen", health,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await harness.changes.until(lambda: fake.stream is not None)
        await until_health(health, (SERVING, SERVING))
        proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), WAIT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, stderr.decode()
    assert f"plaintext health-only listener on {health}" in stderr.decode()


async def test_page_limit_fails_commits_as_a_full_disk_and_lifting_it_recovers(
    tmp_path: Path,
) -> None:
    async with await LogStore.open(tmp_path / "dom0.sqlite") as store:
        await fill(store)
        with pytest.raises(sqlite3.OperationalError, match=FULL):
            await store.commit(make_record(0, 1))
        await free(store)
        assert await store.commit(make_record(0, 1)) is True
        assert (await store.get(0, 1)) is not None


def test_the_default_schedule() -> None:
    assert list(itertools.islice(delays(), 9)) == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert DEFAULT_COMMIT_BACKOFF.jitter == "none"  # so the schedule is exactly this
    backoff = Backoff(DEFAULT_COMMIT_BACKOFF)
    assert [backoff.next_delay() for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
