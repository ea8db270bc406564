"""Server streams are bounded (issue 12 item 3): who may watch a pCPU, how far a subscriber
may fall behind, and how many streams a server admits. dom0's outbox and the coordinator's
recovery when its own interrupt stream is cut off are in test_stream_limits_xen.py.

Real servers on 127.0.0.1 port 0; the tests wait on events and counts, never on time.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from flow_harness import CMC, DOMU
from grpc_health.v1 import health_pb2, health_pb2_grpc
from stream_limits_helpers import (
    TIMEOUT,
    Metadata,
    Watcher,
    inject,
    pcpu_server,
    refusal,
    until,
)
from tls_harness import make_pki, tls_bed

from xenmca.pcpu.interrupts import DEFAULT_MAX_BACKLOG
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook, call_metadata
from xenmca.rpc.stream_limit import DEFAULT_MAX_STREAMS
from xenmca.rpc.tls import TlsFiles
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2

PCPU_IDENTITY = "pcpu"
"""The pCPU hosts' certificate in the test PKI: an identity with no rights on a pCPU."""
WATCH_PATH = "/xenmca.sal.v1.SalService/WatchInterrupts"


# --- who may watch a pCPU ---------------------------------------------------------------


async def test_only_xen_may_watch_a_pcpu_with_a_token_book() -> None:
    tokens = TokenBook.generate(DOM0, OPERATOR, XEN, DOMU)
    async with pcpu_server(token_book=tokens) as (server, address):
        line = server.firmware.line
        cases: list[tuple[Metadata, tuple[grpc.StatusCode, str]]] = [
            ((), (grpc.StatusCode.UNAUTHENTICATED, "MISSING_CREDENTIALS")),
            (
                (("authorization", "Bearer nobody-issued-this"),),
                (grpc.StatusCode.UNAUTHENTICATED, "INVALID_TOKEN"),
            ),
            *(
                (
                    call_metadata(tokens.token_for(other)),
                    (grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_NOT_ALLOWED"),
                )
                for other in (DOM0, OPERATOR, DOMU)
            ),
        ]
        for metadata, expected in cases:
            watcher = Watcher(address, metadata)
            try:
                assert not await watcher.subscribed()
                assert await watcher.refusal() == expected
            finally:
                await watcher.close()
            assert line.subscribers == 0
        xen = Watcher(address, call_metadata(tokens.token_for(XEN)))
        try:
            assert await xen.subscribed() and line.subscribers == 1
            injected = await inject(address, 2, call_metadata(tokens.token_for(OPERATOR)))
            assert await xen.read(2) == [injected.first_record_id, injected.last_record_id]
        finally:
            await xen.close()


async def test_without_identities_anyone_may_watch() -> None:
    async with pcpu_server() as (_, address):
        anyone = Watcher(address)
        try:
            assert await anyone.subscribed()
            await inject(address, 1)
            assert await anyone.read(1) == [1]
        finally:
            await anyone.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsFiles]:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def test_only_the_xen_certificate_may_watch_over_mutual_tls(
    pki: dict[str, TlsFiles],
) -> None:
    tokens = TokenBook.generate(DOM0, OPERATOR, XEN, DOMU)
    async with tls_bed(pki, pcpus=1, tokens=tokens) as bed:
        line = bed.host.servers[0].firmware.line
        assert line.subscribers == 1  # the coordinator's own stream
        cases: list[tuple[str, Metadata, tuple[grpc.StatusCode, str]]] = [
            *(
                (other, (), (grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_NOT_ALLOWED"))
                for other in (DOM0, OPERATOR, DOMU, PCPU_IDENTITY)
            ),
            # The xen certificate with another identity's token is no one.
            (XEN, bed.md(OPERATOR), (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_DISAGREE")),
        ]
        for identity, metadata, expected in cases:
            call = bed.sal(0, identity).WatchInterrupts(
                sal_pb2.WatchInterruptsRequest(), metadata=metadata
            )
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call.read()
            assert refusal(raised.value) == expected, identity
        assert line.subscribers == 1
        for metadata in ((), bed.md(XEN)):  # the certificate alone, or with its own token
            watch = bed.sal(0, XEN).WatchInterrupts(
                sal_pb2.WatchInterruptsRequest(), metadata=metadata
            )
            await watch.initial_metadata()
            assert not watch.done() and line.subscribers == 2
            injected = await bed.sal(0, OPERATOR).InjectError(
                sal_pb2.InjectErrorRequest(type=CMC, count=1), timeout=TIMEOUT
            )
            async with asyncio.timeout(TIMEOUT):
                assert (await watch.read()).record_id == injected.first_record_id
            watch.cancel()
            await until(lambda: line.subscribers == 1)


# --- a lagging subscriber is cut off; a reading one is not slowed ------------------------


async def test_a_lagging_subscriber_is_cut_off_while_a_reader_gets_every_interrupt() -> None:
    batch, backlog = 50, 64
    async with pcpu_server(capacity=100_000) as (server, address):
        line = server.firmware.line
        line.max_backlog = backlog
        reader = Watcher(address)
        # Never reads; no BDP probing, so gRPC's own window stays at its initial 64 KiB.
        lagging = Watcher(address, options=(("grpc.http2.bdp_probe", 0),))
        try:
            assert await reader.subscribed() and await lagging.subscribed()
            received: list[int] = []
            for _ in range(400):  # ~2 600 interrupts fill the window and the backlog
                injected = await inject(address, batch)
                # The reader takes each batch before the next: it never has more than 50 waiting.
                received += await reader.read(batch)
                assert received[-1] == injected.last_record_id
                if line.lagged:
                    break
            assert line.lagged == 1 and line.subscribers == 1
            assert received == list(range(1, len(received) + 1))  # every one, in order
            # Its call ends on the pCPU at once, though its last write still waits for it.
            streams = server.built.streams
            assert streams is not None
            await until(lambda: streams.open_streams(WATCH_PATH) == 1)
            # The lagging subscriber gets what gRPC had buffered, then its reason.
            buffered: list[int] = []
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                async with asyncio.timeout(TIMEOUT):
                    async for message in lagging.call:
                        buffered.append(message.record_id)
            assert refusal(raised.value) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "SUBSCRIBER_LAGGING",
            )
            info = error_info_of(raised.value)
            assert info is not None and info.metadata["max_backlog"] == str(backlog)
            assert buffered == list(range(1, len(buffered) + 1))
            assert len(buffered) < len(received)
            # The reader goes on as before.
            injected = await inject(address, batch)
            assert await reader.read(batch) == list(
                range(injected.first_record_id, injected.last_record_id + 1)
            )
        finally:
            await reader.close()
            await lagging.close()


async def test_a_batch_larger_than_the_backlog_cuts_off_at_once() -> None:
    async with pcpu_server() as (server, address):
        server.firmware.line.max_backlog = 10
        watcher = Watcher(address)
        try:
            assert await watcher.subscribed()
            await inject(address, 11)
            assert await watcher.refusal() == (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "SUBSCRIBER_LAGGING",
            )
            assert server.firmware.line.lagged == 1
        finally:
            await watcher.close()


def test_the_default_backlog_takes_a_20000_record_batch() -> None:
    assert DEFAULT_MAX_BACKLOG >= 20_000


# --- the stream limit ---------------------------------------------------------------------


async def test_a_stream_beyond_the_limit_is_refused_and_nothing_else_changes() -> None:
    async with pcpu_server() as (server, address):
        line = server.firmware.line
        assert server.built.streams is not None
        limit = server.built.streams.max_streams
        assert limit == DEFAULT_MAX_STREAMS
        watchers = [Watcher(address) for _ in range(limit)]
        extra: Watcher | None = None
        try:
            for watcher in watchers:
                assert await watcher.subscribed()
            extra = Watcher(address)
            assert not await extra.subscribed()
            assert await extra.refusal() == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_STREAMS")
            assert line.subscribers == limit  # the refused call never subscribed
            assert server.built.streams.open_streams(WATCH_PATH) == limit
            injected = await inject(address, 3)
            expected = list(range(injected.first_record_id, injected.last_record_id + 1))
            for watcher in watchers:
                assert await watcher.read(3) == expected
            # Other streaming methods have their own count: health Watch is admitted...
            health = health_pb2_grpc.HealthStub(watchers[0].channel)
            checks = [health.Watch(health_pb2.HealthCheckRequest()) for _ in range(limit + 1)]
            for check in checks[:limit]:
                async with asyncio.timeout(TIMEOUT):
                    reply = await check.read()
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            # ...up to the same limit.
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await checks[limit].read()
            assert refusal(raised.value) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_STREAMS")
            for check in checks:
                check.cancel()
            # A slot that frees up is taken again.
            await watchers.pop().close()
            await until(lambda: line.subscribers == limit - 1)
            again = Watcher(address)
            watchers.append(again)
            assert await again.subscribed()
        finally:
            for watcher in watchers:
                await watcher.close()
            if extra is not None:
                await extra.close()
        await until(
            lambda: server.built.streams is not None and not server.built.streams.open_streams()
        )
