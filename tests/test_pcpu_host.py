"""Hosting many pCPUs: 64 in one process, `xenmca serve pcpu` across kill -9, its arguments."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from xenmca.cli import main as xenmca_main
from xenmca.pcpu.command import format_ranges, parse_pcpu_list
from xenmca.pcpu.server import HostStartError, PcpuHost
from xenmca.record.v1 import record_pb2
from xenmca.rpc.channels import open_channel
from xenmca.rpc.events import read_events
from xenmca.sal.v1 import sal_service_pb2 as sal
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

CMC = record_pb2.RECORD_TYPE_CMC
CPE = record_pb2.RECORD_TYPE_CPE


async def describe(address: str) -> sal.DescribePcpuResponse:
    async with open_channel(address) as channel:
        return await sal_grpc.SalServiceStub(channel).DescribePcpu(
            sal.DescribePcpuRequest(), timeout=10
        )


async def test_64_pcpus_in_one_process_each_answer() -> None:
    async with PcpuHost(range(64)) as host:
        assert sorted(host.addresses) == list(range(64))
        assert len(set(host.addresses.values())) == 64
        replies = await asyncio.gather(*(describe(a) for a in host.addresses.values()))
        assert [r.pcpu for r in replies] == list(range(64))
        assert all(len(r.types) == 4 and r.next_record_id == 1 for r in replies)


async def test_a_port_in_use_names_the_pcpu_and_stops_the_others() -> None:
    async with PcpuHost([0]) as first:
        taken = first.servers[0].port
        second = PcpuHost([0, 1, 2], ports={2: taken})
        with pytest.raises(HostStartError, match="pCPU 2"):
            await second.start()
        assert all(s._stopped for s in second.servers.values())


def test_pcpu_lists_parse_and_print() -> None:
    assert parse_pcpu_list("0-3,8") == [0, 1, 2, 3, 8]
    assert parse_pcpu_list("5") == [5]
    assert format_ranges([8, 0, 1, 2, 3, 10, 11]) == "0-3,8,10-11"


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--pcpus", "3-1"], "runs backwards"),
        (["--pcpus", "0-x"], "not a pCPU list"),
        (["--pcpus", "0-3", "--listen", "127.0.0.1:1"], "--listen is for one --pcpu"),
        (["--pcpu", "1", "--listen", "nowhere"], "not HOST:PORT"),
        (["--pcpus", "0-63", "--base-port", "65500"], "above port 65535"),
        (["--pcpu", "0", "--capacity", "0"], "capacity must be"),
        ([], "one of the arguments --pcpu --pcpus is required"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        status = xenmca_main(["serve", "pcpu", *argv])
    except SystemExit as exc:
        status = int(exc.code or 0)
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert problem in err and len(err.splitlines()) == 1, err


# --- a real `xenmca serve pcpu` process across kill -9 ------------------------------


class ServeProcess:
    """`xenmca serve pcpu` in a subprocess; ready when its ready file appears."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.ready_file = tmp_path / "ready.json"
        self.log_path = tmp_path / "serve.log"
        command = [sys.executable, "-m", "xenmca.cli", "serve", "pcpu", *args]
        command += ["--ready-file", str(self.ready_file)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    async def addresses(self, within: float = 20.0) -> dict[int, str]:
        async def appear() -> None:
            while not self.ready_file.exists():
                if self.process.poll() is not None:
                    raise AssertionError(f"serve exited: {self.log_path.read_text()}")
                await asyncio.sleep(0.02)

        await asyncio.wait_for(appear(), within)
        return {int(k): v for k, v in json.loads(self.ready_file.read_text()).items()}

    def signal(self, sig: signal.Signals) -> int:
        os.kill(self.process.pid, sig)
        return self.process.wait(timeout=20)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=20)


@pytest.mark.slow
async def test_serve_pcpu_keeps_records_across_kill_9(tmp_path: Path) -> None:
    state, events = tmp_path / "state", tmp_path / "events.jsonl"
    args = (
        "--pcpus",
        "0-1",
        "--base-port",
        "0",
        "--state-dir",
        str(state),
        "--events",
        str(events),
    )
    first = ServeProcess(tmp_path, *args)
    try:
        addresses = await first.addresses()
        async with open_channel(addresses[0]) as channel:
            zero = sal_grpc.SalServiceStub(channel)
            await zero.InjectError(sal.InjectErrorRequest(type=CMC, count=5))
            await zero.ClearStateInfo(sal.ClearStateInfoRequest(type=CMC, record_id=2))
            before = await zero.GetStateInfo(sal.GetStateInfoRequest(type=CMC))
        async with open_channel(addresses[1]) as channel:
            one = sal_grpc.SalServiceStub(channel)
            await one.InjectError(sal.InjectErrorRequest(type=CPE, count=3))
        assert first.signal(signal.SIGKILL) == -signal.SIGKILL
    finally:
        first.kill()
    created = [e for e in read_events(events) if e["kind"] == "records_created"]
    assert [(e["pcpu"], e["type"], e["first_record_id"], e["last_record_id"]) for e in created] == [
        (0, "CMC", 1, 5),
        (1, "CPE", 1, 3),
    ]
    cleared = [e for e in read_events(events) if e["kind"] == "record_cleared"]
    assert [(e["pcpu"], e["record_id"], e["already_cleared"]) for e in cleared] == [(0, 2, False)]

    first.ready_file.unlink()  # a killed host leaves it behind; the next one rewrites it
    second = ServeProcess(tmp_path, *args)
    try:
        addresses = await second.addresses()
        async with open_channel(addresses[0]) as channel:
            zero = sal_grpc.SalServiceStub(channel)
            reply = await zero.DescribePcpu(sal.DescribePcpuRequest())
            cmc = reply.types[2]
            assert reply.durable and reply.next_record_id == 6
            assert (cmc.pending, cmc.created, cmc.cleared) == (4, 5, 1)
            after = await zero.GetStateInfo(sal.GetStateInfoRequest(type=CMC))
            assert after.record == before.record  # byte for byte, timestamps included
            again = await zero.ClearStateInfo(sal.ClearStateInfoRequest(type=CMC, record_id=2))
            assert again.already_cleared
            injected = await zero.InjectError(sal.InjectErrorRequest(type=CMC, count=1))
            assert injected.first_record_id == 6  # the id counter continues
        async with open_channel(addresses[1]) as channel:
            reply = await sal_grpc.SalServiceStub(channel).DescribePcpu(sal.DescribePcpuRequest())
            assert reply.types[3].pending == 3 and reply.next_record_id == 4
        assert second.signal(signal.SIGTERM) == 0  # graceful stop
        assert not second.ready_file.exists()
    finally:
        second.kill()
    log = second.log_path.read_text()
    assert "serving pCPUs 0-1 on 127.0.0.1:" in log and "stopped pCPUs 0-1" in log


@pytest.mark.slow
async def test_serve_pcpu_on_a_fixed_base_port(tmp_path: Path) -> None:
    base = four_free_ports()
    process = ServeProcess(
        tmp_path, "--pcpus", "0-3", "--host", "127.0.0.1", "--base-port", str(base)
    )
    try:
        addresses = await process.addresses()
        assert addresses == {i: f"127.0.0.1:{base + i}" for i in range(4)}
        reply = await describe(addresses[3])
        assert reply.pcpu == 3 and not reply.durable
        assert process.signal(signal.SIGINT) == 0
    finally:
        process.kill()
    assert f"serving pCPUs 0-3 on 127.0.0.1:{base}-{base + 3}" in process.log_path.read_text()


def four_free_ports() -> int:
    """A port number with the 3 after it free (best effort: bound, then released)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + 3 > 65535:
            continue
        sockets = [socket.socket() for _ in range(4)]
        try:
            for i, sock in enumerate(sockets):
                sock.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise AssertionError("no four consecutive free ports")
