"""The memory yardstick of the `scale` section: bare gRPC servers, one per pCPU, held as the
coordinator holds pCPUs.

`python -m xenmca.testbed.bench.bare_hosts COUNT PORT_FILE` starts COUNT grpc.aio servers
in one process (on the components' event loop), each with a unary method and a
server-stream method and nothing else, and writes their ports to PORT_FILE as JSON.

``measure_bare_hosts`` starts as many of these processes as the section has pCPU hosts,
with as many servers each as a host has pCPUs, plus one process with a single server
(the baseline every process pays once). The bench then holds every server as the
coordinator holds a pCPU: one channel with the coordinator's link options, one unary
call, one open server stream. The servers' resident memory per server, set beside the
pCPU hosts' per pCPU in the same run, says how much of a pCPU's memory is Python gRPC's
own (a server, its connection and one stream) and how much is xenmca's.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import grpc

from xenmca.rpc import event_loop
from xenmca.rpc.channels import open_channel
from xenmca.rpc.lifecycle import die_with_parent_if_asked
from xenmca.testbed.infra.processes import child_env, memory_kib
from xenmca.xen.links import PCPU_LINK_KEEPALIVE_MS

SERVICE = "xenmca.bench.Bare"
PING = f"/{SERVICE}/Ping"
WATCH = f"/{SERVICE}/Watch"


def _fresh(workdir: Path, name: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / name).unlink(missing_ok=True)
    return workdir / name


def _write_ports(port_file: Path, ports: list[int]) -> None:
    port_file.write_text(json.dumps(ports))


def _read_ports(port_file: Path) -> list[int] | None:
    """The ports a process wrote, None until it has."""
    try:
        return list(json.loads(port_file.read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


async def _ping(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b""


async def _watch(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    await context.send_initial_metadata(())
    await asyncio.Event().wait()  # open until the client goes away
    yield b""  # pragma: no cover - never reached


async def serve(count: int, port_file: Path) -> None:
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Ping": grpc.unary_unary_rpc_method_handler(_ping),
            "Watch": grpc.unary_stream_rpc_method_handler(_watch),
        },
    )
    servers, ports = [], []
    for _ in range(count):
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers((handler,))
        ports.append(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        servers.append(server)
    _write_ports(port_file, ports)
    await asyncio.Event().wait()


async def _start(workdir: Path, name: str, count: int) -> tuple[asyncio.subprocess.Process, Path]:
    port_file = _fresh(workdir, f"bare-{name}.ports")
    with (workdir / f"bare-{name}.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", __name__, str(count), str(port_file),
            stdout=log, stderr=log, env=child_env({}),
        )  # fmt: skip
    return process, port_file


async def _ports(process: asyncio.subprocess.Process, port_file: Path, within: float) -> list[int]:
    deadline = time.monotonic() + within
    while (ports := _read_ports(port_file)) is None:
        if process.returncode is not None:
            raise RuntimeError(f"bare server process exited ({process.returncode}); see its log")
        if time.monotonic() > deadline:
            raise TimeoutError(f"bare servers did not listen within {within:g}s")
        await asyncio.sleep(0.05)
    return ports


async def _hold(stack: AsyncExitStack, port: int, gate: asyncio.Semaphore) -> None:
    """One channel as the coordinator's pCPU link, one unary call, one open stream."""
    async with gate:
        channel = open_channel(f"127.0.0.1:{port}", keepalive_ms=PCPU_LINK_KEEPALIVE_MS)
        stack.push_async_callback(channel.close)
        await channel.unary_unary(PING)(b"", timeout=30, wait_for_ready=True)
        call = channel.unary_stream(WATCH)(b"", wait_for_ready=True)
        stack.callback(call.cancel)
        await call.initial_metadata()


async def measure_bare_hosts(
    workdir: Path,
    pcpus: int,
    pcpus_per_host: int,
    *,
    settle_seconds: float = 2.0,
    within: float = 120.0,
) -> dict[str, Any]:
    """Bare servers in the pCPU hosts' shape, each held like a pCPU: RSS per server."""
    sizes = [min(pcpus_per_host, pcpus - first) for first in range(0, pcpus, pcpus_per_host)]
    processes: list[asyncio.subprocess.Process] = []
    try:
        baseline, baseline_ports = await _start(workdir, "baseline", 1)
        processes.append(baseline)
        started = [await _start(workdir, f"host{i}", size) for i, size in enumerate(sizes)]
        processes.extend(process for process, _ in started)
        await _ports(baseline, baseline_ports, within)
        ports = [port for p, f in started for port in await _ports(p, f, within)]
        gate = asyncio.Semaphore(64)
        async with AsyncExitStack() as stack:
            await asyncio.gather(*(_hold(stack, port, gate) for port in ports))
            await asyncio.sleep(settle_seconds)
            assert baseline.pid is not None
            baseline_kib = memory_kib(baseline.pid)["rss"]
            hosts = [memory_kib(p.pid) for p, _ in started]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
            await process.wait()
    return {
        "servers": pcpus,
        "hosts": len(sizes),
        "rss_kib_per_server": round(sum(h["rss"] for h in hosts) / pcpus, 1),
        "anon_kib_per_server": round(sum(h["anon"] for h in hosts) / pcpus, 1),
        "baseline_rss_mib": round(baseline_kib / 1024, 1),
        "rss_kib_per_server_above_baseline": round(
            sum(h["rss"] - baseline_kib for h in hosts) / pcpus, 1
        ),
    }


if __name__ == "__main__":
    die_with_parent_if_asked()  # a bench killed outright leaves no server behind
    event_loop.run(lambda: serve(int(sys.argv[1]), Path(sys.argv[2])))
