"""Benchmarks of the real flow: throughput (faithful and pipelined) and latency at half load.

Real processes on loopback (pCPU hosts, coordinator, dom0), as `xenmca up`
starts them. Figures come from dom0's durable log (its created/logged
CLOCK_MONOTONIC stamps) and from the components' own events, so the bench
process's own work does not count.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import statistics
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xenmca.dom0.log_queries import open_reader
from xenmca.rpc.channels import open_channel
from xenmca.rpc.events import Event, read_events
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.testbed.bench.floor import percentile
from xenmca.testbed.bench.rows import Row, at_least, at_most, figure, fmt, ratio
from xenmca.testbed.infra.launcher import LocalTestbed
from xenmca.testbed.infra.processes import cpu_seconds
from xenmca.testbed.infra.spec import TestbedSpec
from xenmca.vocab import RecordType


@dataclass(frozen=True)
class FlowShape:
    """How many pCPUs, in how many hosts, and how many records."""

    pcpus: int = 64
    pcpus_per_host: int = 32
    records: int = 2000
    vcpu0_pcpu: int = 0


def spread(total: int, pcpus: int) -> dict[int, int]:
    """total records over pCPUs 0..pcpus-1, as evenly as possible."""
    return {p: total // pcpus + (1 if p < total % pcpus else 0) for p in range(pcpus)}


def _spec(workdir: Path, shape: FlowShape, pipelined: bool, capacity: int) -> TestbedSpec:
    return TestbedSpec(
        workdir=workdir,
        pcpus=shape.pcpus,
        pcpus_per_host=shape.pcpus_per_host,
        vcpu0_pcpu=shape.vcpu0_pcpu,
        capacity=capacity,
        # The firmware keeps records in memory (`xenmca serve pcpu` without --state-dir):
        # the floor counts one durable commit per record, dom0's.
        durable_pcpus=False,
        extra_xen_args=["--pipelined"] if pipelined else [],
    )


async def inject(
    bed: LocalTestbed, pcpu: int, count: int, rate: float = 0.0, after: float = 0.0
) -> None:
    """InjectError of count CMC records on pcpu (paced at rate per second when rate > 0),
    sent after `after` seconds."""
    if after > 0:
        await asyncio.sleep(after)
    async with open_channel(bed.pcpu_addresses[pcpu]) as channel:
        await sal_grpc.SalServiceStub(channel).InjectError(
            sal_pb2.InjectErrorRequest(type=RecordType.CMC, count=count, rate_per_second=rate),  # type: ignore[arg-type]
            metadata=bed.operator_metadata(),
            timeout=30,
            wait_for_ready=True,
        )


async def wait_cleared(bed: LocalTestbed, total: int, within: float, poll: float = 0.2) -> float:
    """Wait until the coordinator has cleared total records; the monotonic time it saw that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        state = await bed.describe(within=30.0)
        if state.counters.records_cleared >= total:
            return time.monotonic()
        if loop.time() > deadline:
            raise TimeoutError(
                f"only {state.counters.records_cleared} of {total} records cleared "
                f"within {within:g}s"
            )
        await asyncio.sleep(poll)


def _logged_count(db_path: Path) -> int:
    with contextlib.closing(open_reader(db_path)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])


async def wait_logged(db_path: Path, total: int, within: float, poll: float = 0.2) -> None:
    """Wait until dom0's log holds total records, reading the log file only.

    Asking the coordinator instead (DescribeHypervisor on a new channel) every poll
    would put the bench's own calls on the coordinator's loop in the middle of the
    flow being measured.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        logged = await asyncio.to_thread(_logged_count, db_path)
        if logged >= total:
            return
        if loop.time() > deadline:
            raise TimeoutError(f"only {logged} of {total} records logged within {within:g}s")
        await asyncio.sleep(poll)


def logged_stamps(db_path: Path) -> list[tuple[int, int]]:
    """(created, logged) CLOCK_MONOTONIC ns of every logged record, in log order."""
    with contextlib.closing(open_reader(db_path)) as conn:
        return [
            (int(created), int(logged))
            for created, logged in conn.execute(
                "SELECT created_monotonic_ns, logged_monotonic_ns FROM records ORDER BY id"
            )
        ]


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return round(statistics.fmean(values), 4) if values else None


def breakdown(dom0_events: list[Event], xen_events: list[Event]) -> dict[str, Any]:
    """Where a record's time goes, as dom0 and the coordinator saw it (means, ms)."""
    reads = [e for e in dom0_events if e["kind"] == "record_read"]
    commits = [e for e in dom0_events if e["kind"] == "record_committed"]
    asked = {
        (e["pcpu"], e["record_id"]): e["t_mono_ns"]
        for e in dom0_events
        if e["kind"] == "record_clear_requested"
    }
    cleared = [e for e in dom0_events if e["kind"] == "record_cleared"]
    clear_ms = [
        (e["t_mono_ns"] - asked[(e["pcpu"], e["record_id"])]) / 1e6
        for e in cleared
        if (e["pcpu"], e["record_id"]) in asked
    ]
    # From one CLEAR's answer to the next record's GET answer: injection + GET.
    ends = sorted(e["t_mono_ns"] for e in cleared)
    starts = sorted(e["t_mono_ns"] for e in reads)
    cycle_ms = [(b - a) / 1e6 for a, b in itertools.pairwise(ends)]
    ipi = {kind: [e["ms"] for e in xen_events if e["kind"] == kind] for kind in _XEN_CALLS}
    cycle, parts = _mean(cycle_ms), [_mean(e["get_ms"] for e in reads), _mean(clear_ms)]
    parts.append(_mean(e["commit_ms"] for e in commits))
    known = [part for part in parts if part is not None]
    return {
        "records": len(commits),
        "cycle_ms_mean": cycle,
        # The rest of a cycle: the next injection reaching dom0, and dom0's own work.
        "other_ms_mean": round(cycle - sum(known), 4) if cycle is not None and known else None,
        "dom0_get_ms_mean": _mean(e["get_ms"] for e in reads),
        "dom0_commit_ms_mean": _mean(e["commit_ms"] for e in commits),
        "dom0_clear_ms_mean": _mean(clear_ms),
        "xen_get_ipi_ms_mean": _mean(ipi["get_ipi"]),
        "xen_clear_ipi_ms_mean": _mean(ipi["clear_ipi"]),
        "xen_get_local_ms_mean": _mean(ipi["get_local"]),
        "xen_read_ahead_hits": sum(1 for e in xen_events if e.get("read_ahead")),
        "reads": len(starts),
    }


_XEN_CALLS = ("get_ipi", "clear_ipi", "get_local", "clear_local")


async def measure_throughput(
    workdir: Path, shape: FlowShape, *, pipelined: bool = False, within: float = 600.0
) -> dict[str, Any]:
    """Inject shape.records up front, spread over the pCPUs; records/s until all are logged."""
    counts = spread(shape.records, shape.pcpus)
    capacity = max(256, max(counts.values()))
    spec = _spec(workdir, shape, pipelined, capacity)
    async with LocalTestbed(spec) as bed:
        pids = {p.name: p.pid for p in bed.processes if p.pid is not None}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.monotonic()
        await asyncio.gather(*(inject(bed, p, n) for p, n in counts.items() if n))
        await wait_logged(bed.db_path, shape.records, within)
        finished = await wait_cleared(bed, shape.records, within)
        cpu_used = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    stamps = logged_stamps(bed.db_path)
    logged = [stamp[1] for stamp in stamps]
    span_s = (max(logged) - min(logged)) / 1e9 if len(logged) > 1 else 0.0
    elapsed = finished - started
    result: dict[str, Any] = {
        "pipelined": pipelined,
        "pcpus": shape.pcpus,
        "hosts": len(bed.pcpu_hosts),
        "vcpu0_pcpu": shape.vcpu0_pcpu,
        "records": shape.records,
        "logged": len(stamps),
        "records_per_s": round((len(logged) - 1) / span_s, 1) if span_s else None,
        "records_per_s_inject_to_cleared": round(shape.records / elapsed, 1),
        "first_to_last_logged_s": round(span_s, 3),
        "cpu_percent": {k: round(100 * v / elapsed, 1) for k, v in cpu_used.items()},
        # CPU each process spent per record (injection included): the flow is serial,
        # so on a 2-core machine this, not the network, is most of a record's time.
        "cpu_ms_per_record": {k: round(1000 * v / shape.records, 3) for k, v in cpu_used.items()},
        "breakdown": breakdown(
            read_events(workdir / "events-dom0.jsonl"), read_events(workdir / "events-xen.jsonl")
        ),
    }
    return result


async def measure_latency(
    workdir: Path,
    shape: FlowShape,
    rate: float,
    *,
    seconds: float = 10.0,
    pipelined: bool = False,
) -> dict[str, Any]:
    """Paced injections over the pCPUs at `rate` records/s; injection -> durable log, p50/p99."""
    total = max(1, int(rate * seconds))
    counts = {p: n for p, n in spread(total, shape.pcpus).items() if n}
    spec = _spec(workdir, shape, pipelined, max(256, max(counts.values())))
    async with LocalTestbed(spec) as bed:
        started = time.monotonic()
        # One schedule over all pCPUs: record k at k / rate, on pCPU k mod P. Each pCPU
        # is paced at rate / P, its first record at its own offset (never all at once).
        per_pcpu = rate / len(counts)
        await asyncio.gather(
            *(inject(bed, p, n, per_pcpu, after=p / rate) for p, n in counts.items())
        )
        await wait_logged(bed.db_path, total, within=seconds * 10 + 60)
        elapsed = time.monotonic() - started
        await wait_cleared(bed, total, within=60)
    stamps = logged_stamps(bed.db_path)
    latencies = sorted((logged - created) / 1e6 for created, logged in stamps if created > 0)
    return {
        "pipelined": pipelined,
        "pcpus": shape.pcpus,
        "offered_records_per_s": round(rate, 1),
        "window_s": seconds,
        "records": total,
        "logged": len(stamps),
        "achieved_records_per_s": round(len(stamps) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50), 3) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 3) if latencies else None,
        "max_ms": round(latencies[-1], 3) if latencies else None,
    }


def throughput_rows(sections: Mapping[str, Any]) -> list[Row]:
    """The faithful flow's throughput and its CPU per record."""
    floor_rps = figure(sections.get("floors"), "records_per_s")
    rows: list[Row] = []
    faithful = figure(sections.get("throughput"), "records_per_s")
    share = ratio(faithful, floor_rps)
    rows.append(
        Row(
            "throughput",
            "faithful flow throughput",
            "rec/s",
            faithful,
            f">= 0.8 x floor ({fmt(floor_rps and 0.8 * floor_rps)})",
            share,
            at_least(share, 0.8),
        )
    )

    per_process = figure(sections.get("throughput"), "cpu_ms_per_record") or {}
    cpu_per_record = round(sum(per_process.values()), 3) if per_process else None
    cores = os.cpu_count() or 1
    rows.append(
        Row(
            "throughput",
            "faithful flow CPU per record, all processes",
            "ms",
            cpu_per_record,
            "",
            None,
            None,
            (
                f"{cores} cores: at most {fmt(1000 * cores / cpu_per_record)} rec/s if all "
                "of it overlapped"
                if cpu_per_record
                else ""
            ),
        )
    )
    return rows


def pipelined_rows(sections: Mapping[str, Any]) -> list[Row]:
    """The pipelined flow's throughput, and its ceiling."""
    floors = sections.get("floors")
    floor_rps = figure(floors, "records_per_s")
    rows: list[Row] = []
    pipelined = figure(sections.get("pipelined"), "records_per_s")
    share = ratio(pipelined, floor_rps)
    rows.append(
        Row(
            "pipelined",
            "pipelined flow throughput",
            "rec/s",
            pipelined,
            f">= 2 x floor ({fmt(floor_rps and 2 * floor_rps)})",
            share,
            at_least(share, 2.0),
        )
    )
    ceiling = figure(floors, "pipelined_ceiling_records_per_s") if "pipelined" in sections else None
    rows.append(
        Row(
            "pipelined",
            "pipelined ceiling: 1/(2 RTT + commit)",
            "rec/s",
            ceiling,
            "",
            ratio(ceiling, floor_rps),
            None,
            "dom0's own GET and CLEAR stay serial with its commit",
        )
    )
    return rows


def latency_rows(sections: Mapping[str, Any]) -> list[Row]:
    """Injection -> durable log latency at half the faithful flow's throughput."""
    rtt = figure(sections.get("floors"), "rtt_p50_ms")
    rows: list[Row] = []
    latency = sections.get("latency")
    p99 = figure(latency, "p99_ms")
    share = ratio(p99, rtt, 1)
    rows.append(
        Row(
            "latency",
            "latency inject->durable p50 at half load",
            "ms",
            figure(latency, "p50_ms"),
            "",
            ratio(figure(latency, "p50_ms"), rtt, 1),
            None,
            f"offered {fmt(figure(latency, 'offered_records_per_s'))} rec/s",
        )
    )
    rows.append(
        Row(
            "latency",
            "latency inject->durable p99 at half load",
            "ms",
            p99,
            f"<= 10 x RTT ({fmt(rtt and 10 * rtt)})",
            share,
            at_most(share, 10.0),
        )
    )
    return rows
