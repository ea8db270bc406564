"""Mutual TLS from the command line: client commands with TLS flags, refusals of bad flags,
`certs generate`, and serve/dom0 processes over mTLS whose logs carry no token or key."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import stat
import sys
from pathlib import Path

import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tls_harness import TlsBed, run_xenmca, tls_flags
from tls_helpers import CPE, PCPU, pending
from tls_helpers import bed as bed
from tls_helpers import pki as pki

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
from xenmca.rpc.channels import open_channel
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook
from xenmca.rpc.tls import TlsFiles, channel_credentials

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
