"""Hosts in network namespaces: the layout, cuts and heals, and the whole flow across them.

The tests that create namespaces need root and `ip netns`; they are skipped,
with the reason, only where those are missing (CI runs them as root). Every
namespace a test makes is deleted by the test, also when it fails.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from xenmca.cli import main as cli_main
from xenmca.dom0.log_queries import iter_records, open_reader
from xenmca.record.v1 import record_pb2
from xenmca.rpc.channels import open_channel
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.testbed.infra.launcher import LocalTestbed
from xenmca.testbed.infra.netns import (
    NetnsUnavailable,
    NetworkLayout,
    existing_namespaces,
    link_local_address,
)
from xenmca.testbed.infra.netns_gateway import LoopbackGateway
from xenmca.testbed.infra.spec import TestbedSpec

CMC = record_pb2.RECORD_TYPE_CMC
HOSTS = ["pcpu-host0", "pcpu-host1", "xen", "dom0"]


def _netns_unavailable_reason() -> str | None:
    probe = NetworkLayout(["probe"])
    try:
        probe.create()
    except NetnsUnavailable as exc:
        return str(exc)
    finally:
        probe.destroy()
    return None


_REASON = _netns_unavailable_reason()
needs_netns = pytest.mark.skipif(_REASON is not None, reason=f"network namespaces: {_REASON}")


def root_veths() -> set[str]:
    out = subprocess.run(
        ["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True, check=True
    ).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


@pytest.fixture
def layout() -> Iterator[NetworkLayout]:
    made = NetworkLayout(HOSTS)
    try:
        made.create()
        yield made
    finally:
        made.destroy()
    assert made.namespaces() == []


def _in_namespace(layout: NetworkLayout, host: str, code: str) -> list[str]:
    return [*layout.exec_prefix(host), sys.executable, "-c", textwrap.dedent(code)]


LISTENER = """
    import socket, sys
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((sys.argv[1], int(sys.argv[2])))
    server.listen()
    print("listening", flush=True)
    while True:
        conn, _ = server.accept()
        conn.sendall(b"hello")
        conn.close()
"""

CONNECT = """
    import socket, sys
    try:
        with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.0) as s:
            sys.exit(0 if s.recv(5) == b"hello" else 3)
    except OSError:
        sys.exit(1)
"""


def reachable(layout: NetworkLayout, source: str, target: str, port: int) -> bool:
    command = [*_in_namespace(layout, source, CONNECT), layout.address_of(target), str(port)]
    return subprocess.run(command, timeout=20).returncode == 0


def reachable_within(layout: NetworkLayout, source: str, target: str, port: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if reachable(layout, source, target, port):
            return True
    return False


@pytest.fixture
def listener(layout: NetworkLayout) -> Iterator[int]:
    """A TCP server on pcpu-host1's address, port 7000, answering b"hello"."""
    port = 7000
    command = [*_in_namespace(layout, "pcpu-host1", LISTENER), layout.address_of("pcpu-host1")]
    process = subprocess.Popen([*command, str(port)], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stdout.readline() == b"listening\n"
        yield port
    finally:
        process.kill()
        process.wait()


# -- without root ---------------------------------------------------------------------------


def test_addresses_are_link_local_and_deterministic() -> None:
    one, two = NetworkLayout(HOSTS), NetworkLayout(HOSTS)
    assert one.prefix != two.prefix
    assert [one.address_of(h) for h in HOSTS] == [two.address_of(h) for h in HOSTS]
    assert [one.address_of(h) for h in HOSTS] == [
        "169.254.1.1",
        "169.254.1.2",
        "169.254.1.3",
        "169.254.1.4",
    ]
    assert link_local_address(254) == "169.254.2.1"
    assert one.exec_prefix("xen") == ["ip", "netns", "exec", f"{one.prefix}-xen"]
    with pytest.raises(ValueError, match="unique"):
        NetworkLayout(["a", "a"])
    with pytest.raises(ValueError, match="switch"):
        NetworkLayout(["switch"])


def test_not_root_is_refused_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(NetnsUnavailable) as caught:
        NetworkLayout(HOSTS).create()
    assert "root" in str(caught.value) and "\n" not in str(caught.value)


def test_up_with_hosts_refuses_without_root(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli_main(["up", "--pcpus", "8", "--hosts", "2", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("xenmca up: error: --hosts:") and "root" in err
    assert len(err.splitlines()) == 1


def test_up_with_hosts_checks_the_split(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, words in (
        (["--pcpus", "9", "--hosts", "4"], "cannot be spread"),
        (["--pcpus", "2", "--hosts", "3"], "--hosts must be 1..2"),
        (["--hosts", "2", "--pcpus-per-host", "4"], "cannot be combined"),
    ):
        assert cli_main(["up", *argv]) == 2
        assert words in capsys.readouterr().err


async def test_cut_on_a_loopback_testbed_is_refused(tmp_path: Path) -> None:
    bed = LocalTestbed(TestbedSpec(workdir=tmp_path))
    with pytest.raises(NetnsUnavailable, match="network='netns'"):
        await bed.cut("pcpu-host0")


# -- with root --------------------------------------------------------------------------------


@needs_netns
def test_create_and_destroy_leave_nothing_behind() -> None:
    veths_before = root_veths()
    made = NetworkLayout(HOSTS)
    try:
        made.create()
        expected = {f"{made.prefix}-{h}" for h in [*HOSTS, "switch"]}
        assert set(made.namespaces()) == expected
        assert made.owner_file.exists()
        assert root_veths() == veths_before  # nothing in the machine's own namespace
        for host in HOSTS:
            shown = subprocess.run(
                ["ip", "-n", made.namespace_of(host), "-br", "addr"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert f"{made.address_of(host)}/16" in shown
            assert any(line.startswith("lo ") and "UNKNOWN" in line for line in shown.splitlines())
    finally:
        made.destroy()
    assert not [n for n in existing_namespaces() if n.startswith(made.prefix)]
    assert not made.owner_file.exists()
    assert root_veths() == veths_before
    made.destroy()  # idempotent


@needs_netns
def test_cut_makes_a_host_unreachable_and_heal_restores_it(
    layout: NetworkLayout, listener: int
) -> None:
    assert reachable_within(layout, "xen", "pcpu-host1", listener)
    layout.cut("pcpu-host1")
    assert layout.is_cut("pcpu-host1")
    assert not reachable(layout, "xen", "pcpu-host1", listener)
    assert not reachable(layout, "pcpu-host0", "pcpu-host1", listener)
    layout.heal("pcpu-host1")
    assert not layout.is_cut("pcpu-host1")
    assert reachable_within(layout, "xen", "pcpu-host1", listener)


@needs_netns
async def test_gateway_reaches_a_host_from_the_root_namespace_even_when_cut(
    layout: NetworkLayout, listener: int
) -> None:
    gateway = LoopbackGateway(layout)
    try:
        address = await gateway.open("pcpu-host1", listener)
        host, _, port = address.rpartition(":")
        assert host == "127.0.0.1"
        for cut in (False, True):
            if cut:
                layout.cut("pcpu-host1")
            async with asyncio.timeout(10):
                reader, writer = await asyncio.open_connection(host, int(port))
                assert await reader.read(5) == b"hello"
                writer.close()
    finally:
        await gateway.close()


@needs_netns
def test_orphans_of_a_killed_launcher_are_swept() -> None:
    code = (
        "from xenmca.testbed.infra.netns import NetworkLayout\n"
        "import time\n"
        "layout = NetworkLayout(['a', 'b'])\n"
        "layout.create()\n"
        "print(layout.prefix, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    prefix = ""
    try:
        assert child.stdout is not None
        prefix = child.stdout.readline().strip()
        assert prefix.startswith("xm-")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        assert [n for n in existing_namespaces() if n.startswith(prefix + "-")]
        assert prefix in NetworkLayout.sweep_orphans()
        assert not [n for n in existing_namespaces() if n.startswith(prefix + "-")]
    finally:
        child.kill()
        child.wait()
        if prefix:
            NetworkLayout(["a", "b"], prefix=prefix).destroy()


# -- the whole flow ----------------------------------------------------------------------------


async def inject(bed: LocalTestbed, pcpu: int, count: int) -> None:
    async with open_channel(bed.pcpu_addresses[pcpu]) as channel:
        reply = await sal_grpc.SalServiceStub(channel).InjectError(
            sal_pb2.InjectErrorRequest(type=CMC, count=count),
            metadata=bed.operator_metadata(),
            timeout=10,
        )
    assert reply.stored == count and reply.overflowed == 0


async def firmware(bed: LocalTestbed, pcpu: int) -> sal_pb2.DescribePcpuResponse:
    async with open_channel(bed.pcpu_addresses[pcpu]) as channel:
        return await sal_grpc.SalServiceStub(channel).DescribePcpu(
            sal_pb2.DescribePcpuRequest(), metadata=bed.operator_metadata(), timeout=10
        )


async def pending(bed: LocalTestbed, pcpus: list[int]) -> int:
    states = [await firmware(bed, p) for p in pcpus]
    return sum(t.pending for state in states for t in state.types)


async def wait_cleared(bed: LocalTestbed, total: int, within: float) -> None:
    async with asyncio.timeout(within):
        while True:
            if (await bed.describe()).counters.records_cleared >= total:
                return
            await asyncio.sleep(0.1)


def logged(bed: LocalTestbed) -> Counter[tuple[int, int]]:
    conn = open_reader(bed.db_path)
    try:
        return Counter((r.pcpu, r.record_id) for r in iter_records(conn))
    finally:
        conn.close()


def namespace_inode(path: str) -> int:
    return os.stat(path).st_ino


@pytest.mark.slow
@needs_netns
async def test_flow_across_namespaces_and_a_cut_host_delays_only_its_own(tmp_path: Path) -> None:
    spec = TestbedSpec(
        workdir=tmp_path / "bed", network="netns", pcpus=8, pcpus_per_host=4, vcpu0_pcpu=0
    )
    bed = LocalTestbed(spec)
    async with bed:
        network = bed.network
        assert network is not None
        assert network.hosts == ["pcpu-host0", "pcpu-host1", "xen", "dom0"]
        # Each component really runs in its own namespace and listens on its own address.
        for process in bed.processes:
            assert process.pid is not None
            ns_file = f"/var/run/netns/{network.namespace_of(process.name)}"
            assert namespace_inode(f"/proc/{process.pid}/ns/net") == namespace_inode(ns_file)
        state = await bed.describe()
        assert {link.address.rpartition(":")[0] for link in state.pcpus} == {
            network.address_of("pcpu-host0"),
            network.address_of("pcpu-host1"),
        }
        assert bed.xen_listen_address.startswith(network.address_of("xen") + ":")
        assert all(a.startswith("127.0.0.1:") for a in bed.pcpu_addresses.values())

        # 1. Records on both hosts, both sides of vCPU0 (local calls and IPIs).
        plan = {0: 3, 2: 2, 5: 3, 7: 2}
        for pcpu, count in plan.items():
            await inject(bed, pcpu, count)
        total = sum(plan.values())
        await wait_cleared(bed, total, within=60)
        first = logged(bed)
        assert sum(first.values()) == total and set(first.values()) == {1}
        assert Counter(p for p, _ in first) == plan
        assert await pending(bed, list(range(8))) == 0

        # 2. Cut pcpu-host1 (pCPUs 4-7): errors keep happening on both hosts; only
        # host0's records reach dom0 until the link is back.
        await bed.cut("pcpu-host1")
        await inject(bed, 6, 3)  # the gateway is out of band: the cut host is still reachable
        await inject(bed, 1, 4)
        await inject(bed, 3, 1)
        await wait_cleared(bed, total + 5, within=60)
        during = logged(bed)
        assert Counter(p for p, _ in during) - Counter(p for p, _ in first) == {1: 4, 3: 1}
        assert await pending(bed, [6]) == 3
        assert await pending(bed, [0, 1, 2, 3]) == 0

        # 3. Heal: host1's records follow, each once.
        await bed.heal("pcpu-host1")
        await wait_cleared(bed, total + 8, within=90)
        after = logged(bed)
        assert sum(after.values()) == total + 8 and set(after.values()) == {1}
        assert Counter(p for p, _ in after)[6] == 3
        assert await pending(bed, list(range(8))) == 0
        prefix = network.prefix
    assert not [n for n in existing_namespaces() if n.startswith(prefix)]
    events = (bed.workdir / "events-network.jsonl").read_text()
    for kind in ("network_created", "link_cut", "link_healed", "network_destroyed"):
        assert f'"kind":"{kind}"' in events
