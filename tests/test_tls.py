"""Mutual TLS over real handshakes: every rule, the handshake, tokens with certificates.

Each security rule of DESIGN.md section 3 is shown refusing the wrong identity
and accepting the right one, with the identity taken from the client
certificate; then the handshake itself, bearer tokens on mTLS calls, the whole
flow over mTLS and the plaintext health listener. Certificates and files are in
test_tls_certs.py, the command line in test_tls_cli.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tls_harness import DOMU, TlsBed, make_pki, tls_bed
from tls_helpers import CMC, CPE, PCPU, pending
from tls_helpers import bed as bed
from tls_helpers import pki as pki

from xenmca.dom0.log_store import LogStore
from xenmca.dom0.logger import Dom0Logger
from xenmca.fault.v1 import fault_service_pb2 as fault_pb2
from xenmca.fault.v1 import fault_service_pb2_grpc as fault_grpc
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
from xenmca.pcpu.server import create_server as create_pcpu_server
from xenmca.rpc.channels import open_channel
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.health_listener import HealthListener
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook
from xenmca.rpc.tls import TlsFiles, channel_credentials
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.testbed.infra.fault_client import rule_from_dict


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsFiles]:
    """Certificates with the same names from another CA."""
    return make_pki(tmp_path_factory.mktemp("rogue-pki"))


async def refused(call: object, code: grpc.StatusCode, reason: str | None = None) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    if reason is not None:
        info = error_info_of(caught.value)
        assert info is not None and info.reason == reason, caught.value.details()


async def inject(bed: TlsBed, pcpu: int, count: int = 1, record_type: int = CMC) -> None:
    reply = await bed.sal(pcpu, OPERATOR).InjectError(
        sal_pb2.InjectErrorRequest(type=record_type, count=count), timeout=5
    )
    assert reply.stored == count


# -- the rules, identity from the client certificate -----------------------------------


async def test_only_dom0_reads_and_clears_trapped_calls(bed: TlsBed) -> None:
    await inject(bed, 0)
    attach = bed.hv(DOM0).AttachDom0(hv_pb2.AttachDom0Request(instance="tls-dom0"))
    async with asyncio.timeout(10):
        await attach.read()
    for other in (OPERATOR, XEN, DOMU):
        hv = bed.hv(other)
        got = await hv.GetStateInfo(hv_pb2.GetStateInfoRequest(type=CMC), timeout=5)
        assert got.sal_status == -5 and not got.HasField("record"), other
        size = await hv.GetStateInfoSize(hv_pb2.GetStateInfoSizeRequest(type=CMC), timeout=5)
        assert size.sal_status == -5 and size.size == 0, other
        cleared = await hv.ClearStateInfo(hv_pb2.ClearStateInfoRequest(type=CMC), timeout=5)
        assert cleared.sal_status == -5, other
    assert bed.coordinator.counters.refused_calls == 9
    refusals = bed.watch.matching("call_refused")
    assert {e["identity"] for e in refusals} == {OPERATOR, XEN, DOMU}
    # Only dom0 attaches.
    await refused(
        bed.hv(OPERATOR).AttachDom0(hv_pb2.AttachDom0Request()).read(),
        grpc.StatusCode.PERMISSION_DENIED,
        "IDENTITY_NOT_ALLOWED",
    )
    assert await pending(bed, 0) == 1
    # dom0's certificate reads and clears the record.
    dom0 = bed.hv(DOM0)
    got = await dom0.GetStateInfo(hv_pb2.GetStateInfoRequest(type=CMC), timeout=5)
    assert got.sal_status == 0 and got.record.pcpu == 0
    size = await dom0.GetStateInfoSize(hv_pb2.GetStateInfoSizeRequest(type=CMC), timeout=5)
    assert size.sal_status == 0 and size.size > 0
    cleared = await dom0.ClearStateInfo(
        hv_pb2.ClearStateInfoRequest(type=CMC, record_id=got.record.record_id), timeout=5
    )
    assert cleared.sal_status == 0
    assert await pending(bed, 0) == 0
    attach.cancel()


async def test_only_the_coordinator_gets_clears_and_masks_on_a_pcpu(bed: TlsBed) -> None:
    await inject(bed, 1)
    for other in (DOM0, OPERATOR, DOMU, PCPU):
        sal = bed.sal(1, other)
        for call in (
            sal.GetStateInfo(sal_pb2.GetStateInfoRequest(type=CMC), timeout=5),
            sal.ClearStateInfo(sal_pb2.ClearStateInfoRequest(type=CMC), timeout=5),
            sal.SetInterruptMask(sal_pb2.SetInterruptMaskRequest(type=CPE, masked=True)),
        ):
            await refused(call, grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_NOT_ALLOWED")
        # The open calls stay open to any certificate.
        size = await sal.GetStateInfoSize(sal_pb2.GetStateInfoSizeRequest(type=CMC), timeout=5)
        assert size.sal_status == 0
    assert await pending(bed, 1) == 1
    xen = bed.sal(1, XEN)
    got = await xen.GetStateInfo(sal_pb2.GetStateInfoRequest(type=CMC), timeout=5)
    assert got.sal_status == 0
    masked = await xen.SetInterruptMask(
        sal_pb2.SetInterruptMaskRequest(type=CPE, masked=False), timeout=5
    )
    assert masked is not None
    cleared = await xen.ClearStateInfo(
        sal_pb2.ClearStateInfoRequest(type=CMC, record_id=got.record.record_id), timeout=5
    )
    assert cleared.sal_status == 0
    assert await pending(bed, 1) == 0


async def test_only_the_operator_injects_places_and_sets_faults(bed: TlsBed) -> None:
    rules = {
        address: rule_from_dict({"method": method, "action": "delay", "delay": 0.01, "count": 1})
        for address, method in (
            (bed.host.addresses[0], "SalService.DescribePcpu"),
            (bed.xen_address, "HypervisorService.DescribeHypervisor"),
        )
    }
    for other in (DOM0, XEN, DOMU):
        denied = (grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_NOT_ALLOWED")
        await refused(
            bed.sal(0, other).InjectError(sal_pb2.InjectErrorRequest(type=CMC, count=1)), *denied
        )
        await refused(
            bed.hv(other).SetVcpuPlacement(hv_pb2.SetVcpuPlacementRequest(pcpu=1)), *denied
        )
        for address in (bed.host.addresses[0], bed.xen_address):
            faults = fault_grpc.FaultServiceStub(bed.channel(address, other))
            request = fault_pb2.AddFaultRequest(rule=rules[address])
            await refused(faults.AddFault(request), *denied)
            await refused(faults.ListFaults(fault_pb2.ListFaultsRequest()), *denied)
    assert await pending(bed, 0) == 0
    assert bed.coordinator.vcpu0_pcpu == 0
    await inject(bed, 0)
    placed = await bed.hv(OPERATOR).SetVcpuPlacement(hv_pb2.SetVcpuPlacementRequest(pcpu=1))
    assert placed.previous_pcpu == 0 and bed.coordinator.vcpu0_pcpu == 1
    for address in (bed.host.addresses[0], bed.xen_address):
        faults = fault_grpc.FaultServiceStub(bed.channel(address, OPERATOR))
        added = await faults.AddFault(fault_pb2.AddFaultRequest(rule=rules[address]))
        listed = await faults.ListFaults(fault_pb2.ListFaultsRequest())
        assert [f.fault_id for f in listed.faults] == [added.fault_id]
        assert (await faults.ClearFaults(fault_pb2.ClearFaultsRequest())).cleared == 1


# -- the handshake -----------------------------------------------------------------------


async def test_a_client_without_a_certificate_cannot_connect(bed: TlsBed) -> None:
    for address in (bed.host.addresses[0], bed.xen_address):
        # TLS that trusts the CA but presents no certificate: the server ends the handshake.
        no_cert = sal_grpc.SalServiceStub(bed.channel(address, None))
        await refused(
            no_cert.DescribePcpu(sal_pb2.DescribePcpuRequest(), timeout=5),
            grpc.StatusCode.UNAVAILABLE,
        )
        async with open_channel(address) as plaintext:
            await refused(
                hv_grpc.HypervisorServiceStub(plaintext).DescribeHypervisor(
                    hv_pb2.DescribeHypervisorRequest(), timeout=5
                ),
                grpc.StatusCode.UNAVAILABLE,
            )
    assert bed.coordinator.counters.refused_calls == 0


async def test_a_certificate_from_another_ca_is_refused_both_ways(
    bed: TlsBed, pki: dict[str, TlsFiles], rogue: dict[str, TlsFiles]
) -> None:
    ca = pki[OPERATOR].ca.read_bytes()
    # A client presenting another CA's "operator" certificate (it trusts the real CA).
    impostor = grpc.ssl_channel_credentials(
        ca, rogue[OPERATOR].key.read_bytes(), rogue[OPERATOR].cert.read_bytes()
    )
    for address in (bed.host.addresses[0], bed.xen_address):
        async with open_channel(address, impostor) as channel:
            await refused(
                sal_grpc.SalServiceStub(channel).InjectError(
                    sal_pb2.InjectErrorRequest(type=CMC, count=1), timeout=5
                ),
                grpc.StatusCode.UNAVAILABLE,
            )
    assert await pending(bed, 0) == 0
    # A server with another CA's certificate (that would accept us): the client refuses it.
    fake_pcpu = grpc.ssl_server_credentials(
        [(rogue[PCPU].key.read_bytes(), rogue[PCPU].cert.read_bytes())],
        root_certificates=ca,
        require_client_auth=True,
    )
    server, port = create_pcpu_server("127.0.0.1:0", 7, credentials=fake_pcpu)
    await server.start()
    try:
        async with open_channel(f"127.0.0.1:{port}", channel_credentials(pki[XEN])) as channel:
            await refused(
                sal_grpc.SalServiceStub(channel).GetStateInfo(
                    sal_pb2.GetStateInfoRequest(type=CMC), timeout=5
                ),
                grpc.StatusCode.UNAVAILABLE,
            )
    finally:
        await server.stop(grace=None)


async def test_a_slow_tls_handshake_still_connects(bed: TlsBed) -> None:
    """A handshake slower than the plaintext connect budget (100 ms) is not cut short."""
    host, port = bed.host.addresses[0].rsplit(":", 1)

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float):
        first = True
        try:
            while data := await reader.read(65536):
                if first and delay:
                    await asyncio.sleep(delay)
                first = False
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    tasks: set[asyncio.Task[None]] = set()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        for task in (
            relay(reader, upstream_writer, 0.0),
            relay(upstream_reader, writer, 0.5),  # the server's hello arrives late
        ):
            tasks.add(asyncio.create_task(task))

    proxy = await asyncio.start_server(accept, "127.0.0.1", 0)
    proxy_port = proxy.sockets[0].getsockname()[1]
    try:
        credentials = channel_credentials(bed.pki[OPERATOR])
        async with open_channel(f"127.0.0.1:{proxy_port}", credentials) as channel:
            state = await sal_grpc.SalServiceStub(channel).DescribePcpu(
                sal_pb2.DescribePcpuRequest(), timeout=10
            )
        assert state.pcpu == 0
    finally:
        proxy.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# -- certificates and bearer tokens together ------------------------------------------------


async def test_a_token_on_an_mtls_call_must_agree_with_the_certificate(
    pki: dict[str, TlsFiles],
) -> None:
    tokens = TokenBook.generate(DOM0, OPERATOR, XEN, DOMU)
    async with tls_bed(pki, pcpus=1, tokens=tokens) as bed:
        # Certificate alone, and certificate with its own token: accepted.
        for metadata in ((), bed.md(OPERATOR)):
            reply = await bed.sal(0, OPERATOR).InjectError(
                sal_pb2.InjectErrorRequest(type=CMC, count=1), metadata=metadata, timeout=5
            )
            assert reply.stored == 1
        # The records reached the coordinator over TLS with the xen certificate and token.
        await bed.watch.wait_for("pcpu_connected", count=1)
        # Another identity's token: the call is not authenticated, whatever the certificate.
        await refused(
            bed.sal(0, DOM0).InjectError(
                sal_pb2.InjectErrorRequest(type=CMC, count=1), metadata=bed.md(OPERATOR)
            ),
            grpc.StatusCode.UNAUTHENTICATED,
            "CREDENTIALS_DISAGREE",
        )
        await refused(
            bed.hv(OPERATOR).GetStateInfo(
                hv_pb2.GetStateInfoRequest(type=CMC), metadata=bed.md(DOM0)
            ),
            grpc.StatusCode.UNAUTHENTICATED,
            "CREDENTIALS_DISAGREE",
        )
        stranger = (("authorization", "Bearer not-a-token-anyone-issued"),)
        await refused(
            bed.hv(DOM0).GetStateInfo(hv_pb2.GetStateInfoRequest(type=CMC), metadata=stranger),
            grpc.StatusCode.UNAUTHENTICATED,
            "INVALID_TOKEN",
        )
        # dom0 with its certificate and its token reads; without the token too.
        for metadata in (bed.md(DOM0), ()):
            got = await bed.hv(DOM0).GetStateInfo(
                hv_pb2.GetStateInfoRequest(type=CMC), metadata=metadata, timeout=5
            )
            assert got.sal_status in (0, -5)


async def test_without_a_token_book_a_token_is_ignored(bed: TlsBed) -> None:
    stranger = (("authorization", "Bearer whatever-it-is"),)
    reply = await bed.sal(0, OPERATOR).InjectError(
        sal_pb2.InjectErrorRequest(type=CMC, count=1), metadata=stranger, timeout=5
    )
    assert reply.stored == 1
    got = await bed.hv(DOMU).GetStateInfo(
        hv_pb2.GetStateInfoRequest(type=CMC), metadata=stranger, timeout=5
    )
    assert got.sal_status == -5


# -- the whole flow ----------------------------------------------------------------------


async def test_records_flow_from_pcpus_to_dom0s_log_over_mutual_tls(
    pki: dict[str, TlsFiles], tmp_path: Path
) -> None:
    tokens = TokenBook.generate(DOM0, OPERATOR, XEN)
    async with tls_bed(pki, pcpus=3, tokens=tokens) as bed:
        store = await LogStore.open(tmp_path / "dom0.sqlite")
        logger = Dom0Logger(
            bed.xen_address,
            store,
            token=tokens.token_for(DOM0),
            credentials=channel_credentials(pki[DOM0]),
            polled_types={},
        )
        await logger.start()
        try:
            for pcpu in range(3):
                await bed.sal(pcpu, OPERATOR).InjectError(
                    sal_pb2.InjectErrorRequest(type=CMC, count=4),
                    metadata=bed.md(OPERATOR),
                    timeout=5,
                )
            await bed.watch.until(lambda: bed.coordinator.counters.records_cleared >= 12, 30)
            counts = await store.counts()
            assert counts.total == 12 and counts.by_pcpu == {0: 4, 1: 4, 2: 4}
            assert [await pending(bed, pcpu) for pcpu in range(3)] == [0, 0, 0]
            assert bed.coordinator.counters.refused_calls == 0
        finally:
            await logger.stop()
            await store.close()


# -- the plaintext health listener --------------------------------------------------------


async def test_the_health_listener_serves_health_only_in_plaintext() -> None:
    listener = HealthListener("127.0.0.1:0")
    await listener.start()
    try:
        async with open_channel(listener.address) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            answer = await check(health_pb2.HealthCheckRequest(), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
            await listener.set_serving(True)
            answer = await check(health_pb2.HealthCheckRequest(), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            await refused(
                sal_grpc.SalServiceStub(channel).DescribePcpu(
                    sal_pb2.DescribePcpuRequest(), timeout=5
                ),
                grpc.StatusCode.UNIMPLEMENTED,
            )
    finally:
        await listener.stop()
