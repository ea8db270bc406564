"""Server streams are bounded (issue 12 item 3): who may watch a pCPU, how far a subscriber
may fall behind, how many streams a server admits, dom0's outbox, and the coordinator's
recovery when its own interrupt stream is cut off.

Real servers on 127.0.0.1 port 0; the tests wait on events and counts, never on time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import grpc
import pytest
from flow_harness import CMC, DOMU, EventWatch, ScriptedDom0, flow_bed, start_coordinator
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tls_harness import make_pki, tls_bed

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.pcpu.interrupts import DEFAULT_MAX_BACKLOG
from xenmca.pcpu.server import PcpuHost, PcpuServer, create_server
from xenmca.rpc.channels import open_channel
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook, call_metadata
from xenmca.rpc.stream_limit import DEFAULT_MAX_STREAMS
from xenmca.rpc.tls import TlsFiles
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.xen.dom0_session import DEFAULT_MAX_OUTBOX, Dom0Session

Metadata = tuple[tuple[str, str], ...]
TIMEOUT = 10.0
PCPU_IDENTITY = "pcpu"
"""The pCPU hosts' certificate in the test PKI: an identity with no rights on a pCPU."""
WATCH_PATH = "/xenmca.sal.v1.SalService/WatchInterrupts"


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


# --- AttachDom0's bounded outbox ----------------------------------------------------------


def test_a_session_past_its_outbox_ends_as_lagging() -> None:
    session = Dom0Session("unit", max_outbox=3)
    for injection_id in range(1, 4):
        session.inject(hv_pb2.AttachDom0Response(type=CMC, injection_id=injection_id))
    assert session.waiting == 3 and not session.closed
    session.inject(hv_pb2.AttachDom0Response(type=CMC, injection_id=4))
    assert (session.lagging, session.closed, session.waiting) == (True, True, 0)
    session.inject(hv_pb2.AttachDom0Response(type=CMC, injection_id=5))
    assert session.waiting == 0
    assert asyncio.run(session.next_interrupt()) is None
    assert DEFAULT_MAX_OUTBOX >= 64


async def test_a_dom0_that_does_not_read_is_cut_off_and_its_entry_goes_to_the_next() -> None:
    async with flow_bed(pcpus=1) as bed:
        coordinator = bed.coordinator
        await bed.inject(0)
        await bed.watch.wait_for("entry_queued", pcpu=0)
        silent = ScriptedDom0(bed, "silent")
        await bed.watch.wait_for("injected", pcpu=0)
        session = coordinator.session
        assert session is not None
        session.max_outbox = 16
        # Interrupts dom0 never reads: gRPC's buffers fill, then the outbox, then the cut.
        most_waiting = 0
        for injection_id in range(1_000, 200_000):
            session.inject(hv_pb2.AttachDom0Response(type=CMC, injection_id=injection_id))
            most_waiting = max(most_waiting, session.waiting)
            if session.lagging:
                break
            await asyncio.sleep(0)  # let the stream send what it can
        assert session.lagging and most_waiting <= 16 and session.waiting == 0
        # Detached at once, though the stream's last write still waits for dom0 to read.
        await bed.watch.wait_for("dom0_detached", instance="silent")
        assert coordinator.session is None
        ids = []
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async with asyncio.timeout(TIMEOUT):
                async for interrupt in silent.call:
                    ids.append(interrupt.injection_id)
        assert refusal(raised.value) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "SUBSCRIBER_LAGGING")
        assert ids[0] == 1 and ids[1:] == list(range(1_000, 1_000 + len(ids) - 1))
        # The entry the silent dom0 held is delivered again to the next dom0.
        dom0 = ScriptedDom0(bed, "next")
        interrupt = await dom0.next_interrupt()
        assert interrupt.reinjected
        got = await dom0.get()
        assert got.sal_status == 0 and got.record.record_id == 1
        assert (await dom0.clear(got.record.record_id)).sal_status == 0
        assert (await bed.pending(0)).pending == 0
        await dom0.detach()


# --- the coordinator's own stream ---------------------------------------------------------


async def drain(dom0: ScriptedDom0, records: int) -> list[tuple[int, int]]:
    """Handle one virtual interrupt at a time (GET, keep, CLEAR by id) until records are read."""
    logged: list[tuple[int, int]] = []
    while len(logged) < records:
        await dom0.next_interrupt()
        got = await dom0.get()
        assert got.sal_status == 0, got
        logged.append((got.record.pcpu, got.record.record_id))
        cleared = await dom0.clear(got.record.record_id)
        assert cleared.sal_status == 0 and not cleared.already_cleared, cleared
    return logged


async def test_the_coordinator_cut_off_resubscribes_and_loses_no_record() -> None:
    async with flow_bed(pcpus=2) as bed:
        coordinator = bed.coordinator
        line = bed.host.servers[0].firmware.line
        line.max_backlog = 16
        await bed.inject(0, count=100)  # one batch, far past the backlog: cut off at once
        await bed.inject(1, count=3)
        await bed.watch.wait_for("pcpu_connected", pcpu=0, count=2)
        assert line.lagged == 1 and coordinator.links[0].connects == 2
        assert coordinator.links[1].connects == 1  # the other pCPU's stream is untouched
        assert bed.watch.matching("entry_queued", pcpu=0, why="reconcile")
        # The new stream carries interrupts again.
        after = await bed.inject(0, count=1)
        await bed.watch.wait_for("interrupt_received", pcpu=0, record_id=after.first_record_id)
        dom0 = ScriptedDom0(bed)
        logged = await drain(dom0, 104)
        await dom0.detach()
        expected = [(0, rid) for rid in range(1, 102)] + [(1, rid) for rid in range(1, 4)]
        assert sorted(logged) == expected  # each record once: none lost, none twice
        assert (await bed.pending(0)).pending == 0 and (await bed.pending(1)).pending == 0
        assert coordinator.counters.records_cleared == 104


async def test_a_20000_record_batch_does_not_cut_the_coordinator_off() -> None:
    tokens = TokenBook.generate(DOM0, OPERATOR, XEN, DOMU)
    host = PcpuHost([0], token_book=tokens, capacity=20_000)
    await host.start()
    watch = EventWatch()
    coordinator, built, _ = await start_coordinator(host.addresses, tokens, watch)
    channel = open_channel(host.addresses[0])
    try:
        await watch.wait_for("pcpu_connected")
        injected = await sal_grpc.SalServiceStub(channel).InjectError(
            sal_pb2.InjectErrorRequest(type=CMC, count=20_000),
            metadata=call_metadata(tokens.token_for(OPERATOR)),
        )
        assert injected.stored == 20_000
        await watch.until(lambda: coordinator.counters.interrupts >= 20_000, within=120)
        line = host.servers[0].firmware.line
        assert line.lagged == 0 and line.subscribers == 1
        assert coordinator.links[0].connects == 1 and coordinator.links[0].connected
        assert coordinator.counters.interrupts == 20_000
    finally:
        await channel.close()
        await built.server.stop(0)
        await coordinator.stop()
        await host.stop(grace=None)
