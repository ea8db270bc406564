"""Benchmark: thousands of simulated pCPUs in a few host processes, one coordinator, one dom0.

Measures, as real processes on loopback: the time from launch until every pCPU
serves, the coordinator holds every interrupt stream and dom0 is attached;
resident memory per pCPU (pCPU hosts, and the coordinator); CPU of the
coordinator and the hosts while nothing happens (quiet pCPUs must cost
nothing); then one record raised on every pCPU, all delivered to dom0's log,
with conservation checked against every pCPU's firmware counters. Its memory yardstick,
measured first in the same run: bare gRPC servers in the hosts' shape, each held as the
coordinator holds a pCPU (xenmca.testbed.bench.bare_hosts).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from xenmca.dom0.log_queries import open_reader
from xenmca.rpc.channels import open_channel
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.testbed.bench.bare_hosts import measure_bare_hosts
from xenmca.testbed.bench.flow import wait_cleared
from xenmca.testbed.bench.rows import Row, at_most, figure, fmt, ratio
from xenmca.testbed.infra.launcher import LocalTestbed
from xenmca.testbed.infra.processes import ManagedProcess, cpu_seconds, memory_kib
from xenmca.testbed.infra.spec import TestbedSpec
from xenmca.vocab import RecordType

T = TypeVar("T")
CONCURRENT_CALLS = 64
"""Control RPCs (inject, describe) the bench has in flight at once."""


def raise_open_files_limit(wanted: int) -> tuple[int, int]:
    """Raise RLIMIT_NOFILE towards wanted (up to the hard limit); children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def bounded(
    calls: list[Callable[[], Awaitable[T]]], limit: int = CONCURRENT_CALLS
) -> list[T]:
    """Run the calls with at most limit in flight; results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(c) for c in calls)))


async def _inject_one(bed: LocalTestbed, pcpu: int) -> int:
    async with open_channel(bed.pcpu_addresses[pcpu]) as channel:
        reply = await sal_grpc.SalServiceStub(channel).InjectError(
            sal_pb2.InjectErrorRequest(type=RecordType.CMC, count=1),  # type: ignore[arg-type]
            metadata=bed.operator_metadata(),
            timeout=30,
            wait_for_ready=True,
        )
    return int(reply.stored)


async def _firmware_totals(bed: LocalTestbed, pcpu: int) -> tuple[int, int, int]:
    async with open_channel(bed.pcpu_addresses[pcpu]) as channel:
        state = await sal_grpc.SalServiceStub(channel).DescribePcpu(
            sal_pb2.DescribePcpuRequest(),
            metadata=bed.operator_metadata(),
            timeout=30,
            wait_for_ready=True,
        )
    return (
        sum(t.created for t in state.types),
        sum(t.pending for t in state.types),
        sum(t.overflowed for t in state.types),
    )


async def host_baseline_kib(workdir: Path, within: float = 60.0) -> int:
    """RSS of a pCPU host process serving a single pCPU: the interpreter and libraries
    that every host pays once, whatever its pCPU count."""
    ready = workdir / "ready-baseline-host.json"
    host = ManagedProcess(
        name="baseline-host",
        argv=[
            "serve",
            "pcpu",
            "--pcpu",
            "0",
            "--listen",
            "127.0.0.1:0",
            "--ready-file",
            str(ready),
        ],
        log_path=workdir / "logs" / "baseline-host.log",
        ready_file=ready,
    )
    try:
        await host.start()
        await host.wait_ready(within)
        await asyncio.sleep(1.0)
        assert host.pid is not None
        return memory_kib(host.pid)["rss"]
    finally:
        await host.stop()


def _cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


async def measure_scale(
    workdir: Path,
    *,
    pcpus: int = 4096,
    pcpus_per_host: int = 1024,
    idle_seconds: float = 10.0,
    settle_seconds: float = 2.0,
    within: float = 600.0,
) -> dict[str, Any]:
    """Start pcpus pCPUs in hosts of pcpus_per_host, measure, deliver one record from each."""
    # Each pCPU is a listening socket and a connection in its host, a connection in the
    # coordinator, and briefly a channel here: raise the limit before the children start.
    limit = raise_open_files_limit(4 * pcpus + 1024)
    spec = TestbedSpec(
        workdir=workdir, pcpus=pcpus, pcpus_per_host=pcpus_per_host, durable_pcpus=False
    )
    bed = LocalTestbed(spec)
    result: dict[str, Any] = {
        "pcpus": pcpus,
        "hosts": -(-pcpus // pcpus_per_host),
        "pcpus_per_host": pcpus_per_host,
        "open_files_limit": limit[0],
    }
    # Bare gRPC servers in the hosts' shape, before the testbed: the yardstick of its memory.
    result["bare"] = await measure_bare_hosts(workdir, pcpus, pcpus_per_host)
    baseline_kib = await host_baseline_kib(workdir)
    launched = time.monotonic()
    try:
        await bed.start()
        result["startup_s"] = round(time.monotonic() - launched, 2)
        assert bed.xen is not None and bed.xen.pid is not None
        xen_pid = bed.xen.pid
        host_pids = [h.pid for h in bed.pcpu_hosts if h.pid is not None]
        await asyncio.sleep(settle_seconds)

        hosts = [memory_kib(pid) for pid in host_pids]
        xen = memory_kib(xen_pid)
        result["memory"] = {
            "host_rss_kib_per_pcpu": round(sum(h["rss"] for h in hosts) / pcpus, 1),
            "host_anon_kib_per_pcpu": round(sum(h["anon"] for h in hosts) / pcpus, 1),
            "host_baseline_rss_mib": round(baseline_kib / 1024, 1),
            "host_rss_kib_per_pcpu_above_baseline": round(
                sum(h["rss"] - baseline_kib for h in hosts) / pcpus, 1
            ),
            "host_rss_mib": [round(h["rss"] / 1024, 1) for h in hosts],
            "coordinator_rss_kib_per_pcpu": round(xen["rss"] / pcpus, 1),
            "coordinator_anon_kib_per_pcpu": round(xen["anon"] / pcpus, 1),
            "coordinator_rss_mib": round(xen["rss"] / 1024, 1),
        }

        xen_before, hosts_before = cpu_seconds(xen_pid), _cpu(host_pids)
        started = time.monotonic()
        await asyncio.sleep(idle_seconds)
        spent = time.monotonic() - started
        result["idle"] = {
            "window_s": round(spent, 2),
            "coordinator_cpu_percent": round(100 * (cpu_seconds(xen_pid) - xen_before) / spent, 2),
            "hosts_cpu_percent": round(100 * (_cpu(host_pids) - hosts_before) / spent, 2),
        }

        injected_at = time.monotonic()
        stored = await bounded([lambda p=p: _inject_one(bed, p) for p in range(pcpus)])  # type: ignore[misc]
        await wait_cleared(bed, pcpus, within, poll=0.5)
        result["delivery_s"] = round(time.monotonic() - injected_at, 2)
        totals = await bounded([lambda p=p: _firmware_totals(bed, p) for p in range(pcpus)])  # type: ignore[misc]
        counters = (await bed.describe(within=30.0)).counters
    finally:
        await bed.stop()

    with contextlib.closing(open_reader(bed.db_path)) as conn:
        logged = conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        distinct = conn.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT pcpu, record_id FROM records)"
        )
        distinct_keys = distinct.fetchone()[0]
        covered = conn.execute("SELECT COUNT(DISTINCT pcpu) FROM records").fetchone()[0]
    created = sum(t[0] for t in totals)
    pending = sum(t[1] for t in totals)
    overflowed = sum(t[2] for t in totals)
    result["conservation"] = {
        "injected": sum(stored),
        "created": created,
        "logged": logged,
        "distinct_logged": distinct_keys,
        "pcpus_logged": covered,
        "pending": pending,
        "overflowed": overflowed,
        "lost": created - logged - pending - overflowed,
        "records_cleared": counters.records_cleared,
        "ipi_calls": counters.ipi_calls,
        "holds": logged == created == distinct_keys == pcpus and pending == 0 and overflowed == 0,
    }
    return result


def rows(sections: Mapping[str, Any]) -> list[Row]:
    """Thousands of pCPUs: start-up, memory per pCPU, idle CPU, one record from each."""
    rows: list[Row] = []
    scale = sections.get("scale")
    pcpus = figure(scale, "pcpus")
    startup = figure(scale, "startup_s")
    rows.append(
        Row(
            "scale",
            f"{fmt(pcpus)} pCPUs: launch -> all serving and attached",
            "s",
            startup,
            "<= 30",
            ratio(startup, 30.0),
            at_most(startup, 30.0),
            f"{fmt(figure(scale, 'hosts'))} host processes",
        )
    )
    host_kib = figure(scale, "memory", "host_rss_kib_per_pcpu")
    rows.append(
        Row(
            "scale",
            "pCPU hosts' RSS per pCPU",
            "KiB",
            host_kib,
            "<= 100",
            ratio(host_kib, 100.0),
            at_most(host_kib, 100.0),
            f"anon {fmt(figure(scale, 'memory', 'host_anon_kib_per_pcpu'))} KiB",
        )
    )
    rows.append(
        Row(
            "scale",
            "pCPU hosts' RSS per pCPU above a one-pCPU host",
            "KiB",
            figure(scale, "memory", "host_rss_kib_per_pcpu_above_baseline"),
            "",
            None,
            None,
            f"a one-pCPU host: {fmt(figure(scale, 'memory', 'host_baseline_rss_mib'))} MiB",
        )
    )
    bare_kib = figure(scale, "bare", "rss_kib_per_server")
    rows.append(
        Row(
            "scale",
            "bare gRPC servers' RSS per server, same hosts",
            "KiB",
            bare_kib,
            "",
            None,
            None,
            "each held as a pCPU: a channel, a call, an open stream; above a one-server "
            f"process {fmt(figure(scale, 'bare', 'rss_kib_per_server_above_baseline'))} KiB",
        )
    )
    rows.append(
        Row(
            "scale",
            "pCPU hosts' RSS per pCPU / bare gRPC servers'",
            "x",
            ratio(host_kib, bare_kib),
            "",
            None,
            None,
            "the rest is xenmca's own",
        )
    )
    rows.append(
        Row(
            "scale",
            "coordinator RSS per pCPU",
            "KiB",
            figure(scale, "memory", "coordinator_rss_kib_per_pcpu"),
            "",
            None,
            None,
            f"anon {fmt(figure(scale, 'memory', 'coordinator_anon_kib_per_pcpu'))} KiB",
        )
    )
    idle = figure(scale, "idle", "coordinator_cpu_percent")
    rows.append(
        Row(
            "scale",
            "coordinator CPU while idle",
            "% core",
            idle,
            "<= 5",
            ratio(idle, 5.0),
            at_most(idle, 5.0),
            f"hosts {fmt(figure(scale, 'idle', 'hosts_cpu_percent'))} %",
        )
    )
    conservation = figure(scale, "conservation")
    logged = figure(conservation, "logged")
    rows.append(
        Row(
            "scale",
            "one record from every pCPU delivered",
            "records",
            logged,
            f"= {fmt(pcpus)}, lost 0, pending 0",
            ratio(logged, pcpus),
            figure(conservation, "holds"),
            f"lost {fmt(figure(conservation, 'lost'))}, in {fmt(figure(scale, 'delivery_s'))} s",
        )
    )
    return rows
