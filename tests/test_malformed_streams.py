"""Undecodable bytes on streaming methods: INVALID_ARGUMENT with one ErrorInfo, no traceback.

Raw bytes go over generic channel calls (identity serializers) to every stream shape:
a request stream that the handler iterates (reflection's ServerReflectionInfo,
stream_stream), one it reads with context.read() and one that answers once
(stream_unary, a test service), and response streams (WatchInterrupts, health
Watch, AttachDom0). Each is refused as MALFORMED_REQUEST, the server logs no
traceback, its stream slots are given back, and it keeps serving.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import grpc
import pytest
from flow_harness import FlowBed
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from xenmca.pcpu.server import PcpuServer, create_server
from xenmca.rpc.channels import open_channel
from xenmca.rpc.errors import ERROR_DOMAIN
from xenmca.rpc.health_listener import HealthListener
from xenmca.rpc.server import ServiceBinding, build_server

REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
WATCH = "/xenmca.sal.v1.SalService/WatchInterrupts"
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
ATTACH = "/xenmca.hypervisor.v1.HypervisorService/AttachDom0"
GARBAGE = (b"\xff\xff\xff", b"\x08", b"\x0a\x05ab", b"\x12\x80\x80\x80\x80\x10")
"""A bad tag, a truncated varint, a truncated length-delimited field, a 4 GiB length."""
LIST_SERVICES = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()
TIMEOUT = 10.0


def random_garbage(seed: int, count: int = 8) -> list[bytes]:
    """Bytes that are not a protobuf message: each starts with a tag of wire type 7."""
    rng = random.Random(seed)
    return [bytes([0x0F]) + rng.randbytes(rng.randrange(0, 40)) for _ in range(count)]


def assert_malformed_refusal(error: grpc.aio.AioRpcError) -> None:
    """INVALID_ARGUMENT carrying a google.rpc.Status with exactly one ErrorInfo."""
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    statuses = [
        status_pb2.Status.FromString(value)
        for key, value in error.trailing_metadata() or ()
        if key == "grpc-status-details-bin"
    ]
    assert len(statuses) == 1, error.details()
    (detail,) = statuses[0].details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    assert (info.reason, info.domain) == ("MALFORMED_REQUEST", ERROR_DOMAIN)
    assert "do not decode" in (error.details() or "")


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record of the test; afterwards, none may carry a traceback or be an error."""
    with caplog.at_level(logging.DEBUG):
        yield caplog
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not noisy, [f"{r.name}: {r.getMessage()}" for r in noisy]


@asynccontextmanager
async def pcpu_server() -> AsyncIterator[tuple[PcpuServer, grpc.aio.Channel]]:
    server, port = create_server("127.0.0.1:0", 0)
    await server.start()
    channel = open_channel(f"127.0.0.1:{port}")
    try:
        yield server, channel
    finally:
        await channel.close()
        await server.stop(None)


async def stream_stream(channel: grpc.aio.Channel, path: str, messages: list[bytes]) -> list[bytes]:
    """Send messages on a bidirectional stream, half-close, and read every reply."""
    call = channel.stream_stream(path)(iter(messages), timeout=TIMEOUT)
    return [reply async for reply in call]


async def unary_stream(channel: grpc.aio.Channel, path: str, request: bytes, **kw: object) -> None:
    call = channel.unary_stream(path)(request, timeout=TIMEOUT, **kw)  # type: ignore[arg-type]
    await call.read()
    raise AssertionError(f"{path} accepted {request!r}")


# --- request streams ------------------------------------------------------------------


async def test_garbage_on_reflection_is_invalid_argument(server_log: object) -> None:
    async with pcpu_server() as (server, channel):
        for garbage in (*GARBAGE, *random_garbage(seed=12)):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stream_stream(channel, REFLECTION, [garbage])
            assert_malformed_refusal(raised.value)
        # A good request first is answered; the bad one after it ends the stream.
        call = channel.stream_stream(REFLECTION)(iter([LIST_SERVICES, GARBAGE[0]]))
        first = reflection_pb2.ServerReflectionResponse.FromString(await call.read())
        names = {s.name for s in first.list_services_response.service}
        assert "xenmca.sal.v1.SalService" in names
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call.read()
        assert_malformed_refusal(raised.value)
        # The refused streams gave their slots back and reflection still answers.
        assert server.built.streams is not None
        assert server.built.streams.open_streams() == 0
        (reply,) = await stream_stream(channel, REFLECTION, [LIST_SERVICES])
        assert reflection_pb2.ServerReflectionResponse.FromString(reply).list_services_response


async def _count_requests(requests: AsyncIterator[health_pb2.HealthCheckRequest], context: object):
    """stream_unary: how many requests arrived (as a HealthCheckResponse status number)."""
    count = 0
    async for _ in requests:
        count += 1
    return health_pb2.HealthCheckResponse(status=count)


async def _echo_by_read(requests: object, context: grpc.aio.ServicerContext) -> None:
    """stream_stream with context.read() / context.write() instead of iteration."""
    while (request := await context.read()) is not grpc.aio.EOF:
        await context.write(health_pb2.HealthCheckResponse(status=len(request.service)))


TEST_SERVICE = "xenmca.test.Shapes"
_decode = health_pb2.HealthCheckRequest.FromString
_encode = health_pb2.HealthCheckResponse.SerializeToString
SHAPES = grpc.method_handlers_generic_handler(
    TEST_SERVICE,
    {
        "Count": grpc.stream_unary_rpc_method_handler(
            _count_requests, request_deserializer=_decode, response_serializer=_encode
        ),
        "Echo": grpc.stream_stream_rpc_method_handler(
            _echo_by_read, request_deserializer=_decode, response_serializer=_encode
        ),
    },
)


async def test_garbage_on_a_client_stream_and_a_read_loop_is_invalid_argument(
    server_log: object,
) -> None:
    built = build_server(
        "127.0.0.1:0",
        [ServiceBinding(TEST_SERVICE, lambda server: server.add_generic_rpc_handlers((SHAPES,)))],
    )
    await built.start()
    channel = open_channel(f"127.0.0.1:{built.port}")
    good = health_pb2.HealthCheckRequest(service="abc").SerializeToString()
    try:
        count = channel.stream_unary(f"/{TEST_SERVICE}/Count")
        reply = await count(iter([good, good]), timeout=TIMEOUT)
        assert health_pb2.HealthCheckResponse.FromString(reply).status == 2
        for garbage in GARBAGE:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await count(iter([good, garbage, good]), timeout=TIMEOUT)
            assert_malformed_refusal(raised.value)

        echo = channel.stream_stream(f"/{TEST_SERVICE}/Echo")
        call = echo(iter([good, GARBAGE[1]]), timeout=TIMEOUT)
        assert health_pb2.HealthCheckResponse.FromString(await call.read()).status == 3
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call.read()
        assert_malformed_refusal(raised.value)
        assert built.streams is not None and built.streams.open_streams() == 0
    finally:
        await channel.close()
        await built.stop(None)


# --- response streams -----------------------------------------------------------------


async def test_garbage_on_server_streams_is_invalid_argument(server_log: object) -> None:
    async with pcpu_server() as (server, channel):
        for path in (WATCH, HEALTH_WATCH):
            for garbage in GARBAGE:
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await unary_stream(channel, path, garbage)
                assert_malformed_refusal(raised.value)
        assert server.firmware.line.subscribers == 0
        assert server.built.streams is not None
        assert server.built.streams.open_streams() == 0


@pytest.mark.xenmca(pcpus=1)
async def test_garbage_on_attach_dom0_and_coordinator_reflection(
    server_log: object, xenmca_coordinator: FlowBed
) -> None:
    bed = xenmca_coordinator
    for garbage in GARBAGE:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await unary_stream(bed.channel, ATTACH, garbage, metadata=bed.dom0_md)
        assert_malformed_refusal(raised.value)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stream_stream(bed.channel, REFLECTION, [garbage])
        assert_malformed_refusal(raised.value)
    assert bed.coordinator.session is None
    assert bed.built.streams is not None and bed.built.streams.open_streams() == 0


async def test_garbage_on_the_health_listener_is_invalid_argument(server_log: object) -> None:
    listener = HealthListener("127.0.0.1:0")
    await listener.start()
    channel = open_channel(listener.address)
    try:
        for garbage in GARBAGE:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await unary_stream(channel, HEALTH_WATCH, garbage)
            assert_malformed_refusal(raised.value)
        assert listener.streams.open_streams() == 0
    finally:
        await channel.close()
        await listener.stop(None)
