"""Mutual TLS over real handshakes: generated certificates, identities from them, every rule.

Each security rule of DESIGN.md section 3 is shown refusing the wrong identity
and accepting the right one, with the identity taken from the client
certificate; then the whole flow over mTLS, the command-line flags, and that
no log line of a multi-process run carries a token or a private key.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tls_harness import DOMU, TlsBed, make_pki, run_xenmca, tls_bed, tls_flags

from xenmca.dom0.log_store import LogStore
from xenmca.dom0.logger import Dom0Logger
from xenmca.fault.v1 import fault_service_pb2 as fault_pb2
from xenmca.fault.v1 import fault_service_pb2_grpc as fault_grpc
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
from xenmca.pcpu.server import create_server as create_pcpu_server
from xenmca.record.v1 import record_pb2
from xenmca.rpc.channels import open_channel
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.health_listener import HealthListener
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook, authenticate
from xenmca.rpc.tls import (
    TlsFileError,
    TlsFiles,
    channel_credentials,
    tls_files_from_args,
)
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.testbed.infra.fault_client import rule_from_dict

CMC = record_pb2.RECORD_TYPE_CMC
CPE = record_pb2.RECORD_TYPE_CPE
PCPU = "pcpu"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsFiles]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsFiles]:
    """Certificates with the same names from another CA."""
    return make_pki(tmp_path_factory.mktemp("rogue-pki"))


@pytest.fixture
async def bed(pki: dict[str, TlsFiles]) -> AsyncIterator[TlsBed]:
    async with tls_bed(pki) as started:
        yield started


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


async def pending(bed: TlsBed, pcpu: int, record_type: int = CMC) -> int:
    state = await bed.sal(pcpu, OPERATOR).DescribePcpu(sal_pb2.DescribePcpuRequest(), timeout=5)
    return next(t.pending for t in state.types if t.type == record_type)


# -- certificates and files ----------------------------------------------------------


def test_generated_pki_is_private_and_names_each_identity(pki: dict[str, TlsFiles]) -> None:
    assert set(pki) == {DOM0, OPERATOR, XEN, PCPU, DOMU}
    for identity, files in pki.items():
        for path in (files.cert, files.key, files.ca):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert files.ca == pki[DOM0].ca
        certificate = x509.load_pem_x509_certificate(files.cert.read_bytes())
        cn = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert cn == identity == files.load().identity
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
        assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert stat.S_IMODE(pki[DOM0].cert.parent.stat().st_mode) == 0o700


def test_bad_tls_files_get_one_line_naming_file_and_problem(
    pki: dict[str, TlsFiles], tmp_path: Path
) -> None:
    good = pki[DOM0]
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello\n")
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    cases = [
        (TlsFiles(tmp_path / "nope.crt", good.key, good.ca), "nope.crt: no such file"),
        (TlsFiles(good.cert, tmp_path, good.ca), "is a directory"),
        (TlsFiles(garbage, good.key, good.ca), "garbage.pem: not a PEM certificate"),
        (TlsFiles(good.cert, garbage, good.ca), "garbage.pem: not a PEM private key"),
        (TlsFiles(good.cert, good.key, garbage), "garbage.pem: not a PEM certificate"),
        (TlsFiles(good.cert, good.key, empty), "empty.pem: is empty"),
        (TlsFiles(good.cert, pki[OPERATOR].key, good.ca), "does not belong to certificate"),
    ]
    if os.geteuid() != 0:  # root reads anything
        unreadable = tmp_path / "unreadable.key"
        unreadable.write_bytes(good.key.read_bytes())
        unreadable.chmod(0)
        cases.append((TlsFiles(good.cert, unreadable, good.ca), "cannot read"))
    for files, expected in cases:
        with pytest.raises(TlsFileError) as caught:
            files.load()
        message = str(caught.value)
        assert expected in message and "\n" not in message, message
        assert "PRIVATE KEY" not in message


def test_tls_flags_go_together() -> None:
    def namespace(**given: str | None) -> argparse.Namespace:
        return argparse.Namespace(
            tls_cert=given.get("cert"), tls_key=given.get("key"), tls_ca=given.get("ca")
        )

    assert tls_files_from_args(namespace()) is None
    assert tls_files_from_args(namespace(cert="c", key="k", ca="a")) == TlsFiles(
        Path("c"), Path("k"), Path("a")
    )
    with pytest.raises(TlsFileError, match=r"go together \(missing --tls-key, --tls-ca\)"):
        tls_files_from_args(namespace(cert="c"))


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "pcpu", "--pcpu", "0"],
        ["serve", "xen", "--pcpu", "0=127.0.0.1:1"],
        ["dom0", "--xen", "127.0.0.1:1", "--db", "log.sqlite"],
        ["inject", "--pcpu", "127.0.0.1:1", "--type", "cmc"],
        ["status", "--xen", "127.0.0.1:1"],
        ["fault", "add", "--pcpu", "127.0.0.1:1", "--method", "M", "--action", "fail"],
        ["fault", "list", "--pcpu", "127.0.0.1:1"],
        ["fault", "clear", "--xen", "127.0.0.1:1"],
    ],
)
def test_every_serve_dom0_and_client_command_takes_the_tls_flags(command: list[str]) -> None:
    from xenmca.cli import build_parser

    files = TlsFiles(Path("/etc/xenmca/tls/tls.crt"), Path("/k/tls.key"), Path("/k/ca.crt"))
    args = build_parser().parse_args([*command, *files.flags()])
    assert tls_files_from_args(args) == files


class FakeContext:
    """What authenticate() reads of a servicer context: the auth context and the metadata."""

    def __init__(self, auth: dict[str, list[bytes]], token: str | None = None) -> None:
        self._auth = auth
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def test_how_the_identity_is_derived() -> None:
    book = TokenBook({DOM0: "dom0-token-123", OPERATOR: "operator-token-123"})
    mtls = {"transport_security_type": [b"ssl"], "x509_pem_cert": [b"PEM"]}
    dom0_cert = {**mtls, "x509_common_name": [b"dom0"]}
    plaintext: dict[str, list[bytes]] = {}
    cases = [
        # (auth context, token, book) -> (identity, enforced, problem)
        ((dom0_cert, None, None), (DOM0, True, None)),
        ((dom0_cert, None, book), (DOM0, True, None)),
        ((dom0_cert, "dom0-token-123", book), (DOM0, True, None)),
        ((dom0_cert, "operator-token-123", book), (None, True, "CREDENTIALS_DISAGREE")),
        ((dom0_cert, "nobody-issued-this", book), (None, True, "INVALID_TOKEN")),
        ((dom0_cert, "nobody-issued-this", None), (DOM0, True, None)),  # cannot check: ignored
        ((mtls, None, None), (None, True, "CERTIFICATE_WITHOUT_IDENTITY")),
        ((mtls, "dom0-token-123", book), (None, True, "CERTIFICATE_WITHOUT_IDENTITY")),
        (({"transport_security_type": [b"ssl"]}, None, None), (None, True, "MISSING_CREDENTIALS")),
        ((plaintext, "dom0-token-123", book), (DOM0, True, None)),
        ((plaintext, None, book), (None, True, "MISSING_CREDENTIALS")),
        ((plaintext, "nobody-issued-this", book), (None, True, "INVALID_TOKEN")),
        ((plaintext, "dom0-token-123", None), (None, False, None)),  # development setup
    ]
    for (auth, token, tokens), expected in cases:
        caller = authenticate(FakeContext(auth, token), tokens)  # type: ignore[arg-type]
        assert (caller.identity, caller.enforced, caller.problem) == expected, (auth, token)


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


# -- the command line ----------------------------------------------------------------------


async def test_client_commands_with_tls_flags(bed: TlsBed, pki: dict[str, TlsFiles]) -> None:
    operator = tls_flags(pki[OPERATOR])
    pcpu0, xen = bed.host.addresses[0], bed.xen_address
    injected, status_xen, status_pcpu, as_dom0, plaintext, partial = await asyncio.gather(
        run_xenmca("inject", "--pcpu", pcpu0, "--type", "cpe", "--count", "2", *operator),
        run_xenmca("status", "--xen", xen, "--json", *operator),
        run_xenmca("status", "--pcpu", pcpu0, "--json", *operator),
        run_xenmca("inject", "--pcpu", pcpu0, "--type", "cmc", *tls_flags(pki[DOM0])),
        run_xenmca("status", "--xen", xen),
        run_xenmca("status", "--xen", xen, "--tls-cert", str(pki[OPERATOR].cert)),
    )
    assert injected[0] == 0 and "accepted 2, stored 2" in injected[1], injected
    assert status_xen[0] == 0 and len(json.loads(status_xen[1])["pcpus"]) == 2, status_xen
    assert status_pcpu[0] == 0 and json.loads(status_pcpu[1])["types"], status_pcpu
    assert as_dom0[0] == 2 and "PERMISSION_DENIED [IDENTITY_NOT_ALLOWED]" in as_dom0[2], as_dom0
    assert plaintext[0] == 3 and "UNAVAILABLE" in plaintext[2], plaintext
    assert partial[0] == 2 and partial[2].count("\n") == 1, partial
    assert "missing --tls-key, --tls-ca" in partial[2]
    assert await pending(bed, 0, CPE) == 2
    added = await run_xenmca(
        "fault", "add", "--xen", xen, "--method", "HypervisorService.DescribeHypervisor",
        "--action", "delay", "--delay", "0.01", "--count", "1", *operator,
    )  # fmt: skip
    assert added[0] == 0, added
    listed = await run_xenmca("fault", "list", "--xen", xen, "--json", *operator)
    assert listed[0] == 0 and json.loads(listed[1])[0]["fault_id"] == added[1].strip(), listed
    cleared = await run_xenmca("fault", "clear", "--xen", xen, *operator)
    assert cleared[0] == 0 and "cleared 1 fault rule" in cleared[1], cleared


async def test_serve_and_dom0_refuse_bad_tls_flags_with_one_line(
    pki: dict[str, TlsFiles], tmp_path: Path
) -> None:
    good = pki[XEN]
    results = await asyncio.gather(
        run_xenmca("serve", "pcpu", "--pcpu", "0", "--listen", "127.0.0.1:0",
                   "--tls-cert", str(good.cert)),
        run_xenmca("serve", "xen", "--pcpu", "0=127.0.0.1:1", "--tls-cert",
                   str(tmp_path / "absent.crt"), "--tls-key", str(good.key), "--tls-ca",
                   str(good.ca)),
        run_xenmca("dom0", "--xen", "127.0.0.1:1", "--db", str(tmp_path / "log.sqlite"),
                   "--tls-cert", str(good.cert), "--tls-key", str(good.cert), "--tls-ca",
                   str(good.ca)),
        run_xenmca("serve", "xen", "--pcpu", "0=127.0.0.1:1", "--health-listen", "nope",
                   *good.flags()),
    )  # fmt: skip
    expected = [
        "xenmca serve pcpu: error: --tls-cert, --tls-key and --tls-ca go together",
        "xenmca serve xen: error: TLS certificate " + str(tmp_path / "absent.crt"),
        "xenmca dom0: error: TLS private key " + str(good.cert) + ": not a PEM private key",
        "xenmca serve xen: error: --health-listen: address 'nope' is not HOST:PORT",
    ]
    for (code, _, err), start in zip(results, expected, strict=True):
        assert code == 2 and err.startswith(start) and err.count("\n") == 1, err


async def test_certs_generate_command(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    code, stdout, stderr = await run_xenmca(
        "certs", "generate", "--dir", str(out), "--host", "xen.example", "--host", "10.1.2.3"
    )
    assert code == 0, stderr
    assert "xen: --tls-cert" in stdout and "PRIVATE" not in stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        ["ca.crt"] + [f"{i}.{s}" for i in (DOM0, OPERATOR, XEN, PCPU) for s in ("crt", "key")]
    )
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out.iterdir())
    certificate = x509.load_pem_x509_certificate((out / "xen.crt").read_bytes())
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost", "xen.example"]
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        "::1",
        "10.1.2.3",
    }
    again = await run_xenmca("certs", "generate", "--dir", str(out))
    assert again[0] == 2 and "exists (use --force" in again[2]
    forced = await run_xenmca(
        "certs", "generate", "--dir", str(out), "--force", "--identity", "xen"
    )
    assert forced[0] == 0, forced
    bad = await run_xenmca("certs", "generate", "--dir", str(out), "--host", "not a host")
    assert bad[0] == 2 and "neither an IP address nor a DNS name" in bad[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_for_file(path: Path, process: asyncio.subprocess.Process, log: Path) -> dict:
    async with asyncio.timeout(30):
        while not await asyncio.to_thread(path.exists):
            assert process.returncode is None, await asyncio.to_thread(log.read_text)
            await asyncio.sleep(0.05)
    return json.loads(await asyncio.to_thread(path.read_text))


def read_all(paths: list[Path]) -> str:
    return "".join(path.read_text() for path in paths)


@pytest.mark.slow
async def test_serve_and_dom0_commands_over_mtls_log_no_secret(
    pki: dict[str, TlsFiles], tmp_path: Path
) -> None:
    tokens = TokenBook.generate(DOM0, OPERATOR, XEN)
    token_file = tmp_path / "tokens.json"
    tokens.save(token_file)
    auth = ["--token-file", str(token_file)]
    pcpu_health, xen_health = free_port(), free_port()
    processes: list[asyncio.subprocess.Process] = []
    logs: list[Path] = []

    async def start(name: str, *args: str) -> asyncio.subprocess.Process:
        log = tmp_path / f"{name}.log"
        logs.append(log)
        with log.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "xenmca.cli", "-v", *args, stdout=sink, stderr=sink
            )
        processes.append(process)
        return process

    try:
        pcpu = await start(
            "pcpu", "serve", "pcpu", "--pcpus", "0-1", "--base-port", "0",
            "--ready-file", str(tmp_path / "pcpu-ready.json"),
            "--events", str(tmp_path / "pcpu-events.jsonl"),
            "--health-listen", f"127.0.0.1:{pcpu_health}", *auth, *tls_flags(pki[PCPU]),
        )  # fmt: skip
        addresses = await wait_for_file(tmp_path / "pcpu-ready.json", pcpu, logs[0])
        xen = await start(
            "xen", "serve", "xen", "--listen", "127.0.0.1:0", "--throttle-preset", "fast",
            *(f"--pcpu={p}={a}" for p, a in addresses.items()),
            "--ready-file", str(tmp_path / "xen-ready.json"),
            "--events", str(tmp_path / "xen-events.jsonl"),
            "--health-listen", f"127.0.0.1:{xen_health}", *auth, *tls_flags(pki[XEN]),
        )  # fmt: skip
        xen_address = (await wait_for_file(tmp_path / "xen-ready.json", xen, logs[1]))["address"]
        await start(
            "dom0", "dom0", "--xen", xen_address, "--db", str(tmp_path / "dom0.sqlite"),
            "--events", str(tmp_path / "dom0-events.jsonl"), "--no-cpe-poll",
            *auth, *tls_flags(pki[DOM0]),
        )  # fmt: skip
        # Probes: plaintext health on the listeners, while the TLS ports refuse plaintext.
        for port in (pcpu_health, xen_health):
            async with open_channel(f"127.0.0.1:{port}") as channel:
                answer = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=10, wait_for_ready=True
                )
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
        for address in addresses.values():
            injected = await run_xenmca(
                "inject", "--pcpu", address, "--type", "cmc", "--count", "3",
                *auth, *tls_flags(pki[OPERATOR]),
            )  # fmt: skip
            assert injected[0] == 0, injected
        operator = channel_credentials(pki[OPERATOR])
        metadata = (("authorization", f"Bearer {tokens.token_for(OPERATOR)}"),)
        async with open_channel(xen_address, operator) as channel:
            hv = hv_grpc.HypervisorServiceStub(channel)
            async with asyncio.timeout(60):
                while True:
                    state = await hv.DescribeHypervisor(
                        hv_pb2.DescribeHypervisorRequest(), metadata=metadata, timeout=5
                    )
                    if state.counters.records_cleared >= 6:
                        break
                    await asyncio.sleep(0.1)
        status = await run_xenmca("status", "--xen", xen_address, *auth, *tls_flags(pki[OPERATOR]))
        assert status[0] == 0, status
    finally:
        for process in reversed(processes):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
    assert [p.returncode for p in processes] == [0, 0, 0], await asyncio.to_thread(read_all, logs)
    with sqlite3.connect(tmp_path / "dom0.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 6
    events = [tmp_path / f"{name}-events.jsonl" for name in ("pcpu", "xen", "dom0")]
    text = await asyncio.to_thread(read_all, [*logs, *events])
    assert "mutual TLS as 'pcpu'" in text and "mutual TLS as 'xen'" in text
    assert "mutual TLS as 'dom0'" in text and "health-only listener" in text
    for token in tokens.tokens.values():
        assert token not in text
    for identity in (PCPU, XEN, DOM0, OPERATOR):
        key_lines = pki[identity].key.read_text().splitlines()[1:-1]
        assert key_lines and not any(line in text for line in key_lines)
    assert "PRIVATE KEY" not in text
