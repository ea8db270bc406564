"""Benchmark: dom0's GET latency for quiet pCPUs, without and with a storm on another pCPU.

Real processes on loopback (pCPU hosts, coordinator, dom0). Two windows of the
same quiet traffic; in the second, one pCPU also storms at `storm_rate`. The
figures come from dom0's own `record_read` events (GET round trip as dom0 saw
it) and the coordinator's CPU time from /proc, both measured in the same run.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xenmca.rpc.channels import open_channel
from xenmca.rpc.events import read_events
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.testbed.bench.rows import Row, at_most, figure, fmt
from xenmca.testbed.infra.launcher import LocalTestbed
from xenmca.testbed.infra.processes import cpu_seconds
from xenmca.testbed.infra.spec import TestbedSpec
from xenmca.vocab import RecordType


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _inject(address: str, metadata: Any, count: int, rate: float) -> None:
    async with open_channel(address) as channel:
        await sal_grpc.SalServiceStub(channel).InjectError(
            sal_pb2.InjectErrorRequest(type=RecordType.CMC, count=count, rate_per_second=rate),  # type: ignore[arg-type]
            metadata=metadata,
            timeout=10,
        )


async def _window(
    bed: LocalTestbed,
    quiet: list[int],
    seconds: float,
    quiet_rate: float,
    storm: tuple[int, float] | None,
) -> tuple[int, int, float, dict[str, float]]:
    """Run one window; returns (start ns, end ns, coordinator CPU seconds used, CPU by process)."""
    assert bed.xen is not None and bed.xen.pid is not None
    cpu_before = cpu_seconds(bed.xen.pid)
    others = {p.name: p.pid for p in bed.processes if p.pid is not None}
    others_before = {name: cpu_seconds(pid) for name, pid in others.items()}
    start = time.monotonic_ns()
    count = max(1, int(quiet_rate * seconds))
    calls = [
        _inject(bed.pcpu_addresses[p], bed.operator_metadata(), count, quiet_rate) for p in quiet
    ]
    if storm is not None:
        pcpu, rate = storm
        calls.append(
            _inject(bed.pcpu_addresses[pcpu], bed.operator_metadata(), int(rate * seconds), rate)
        )
    await asyncio.gather(*calls)
    await asyncio.sleep(seconds)
    end = time.monotonic_ns()
    used = {
        name: round(100 * (cpu_seconds(pid) - others_before[name]) / seconds, 1)
        for name, pid in others.items()
    }
    return start, end, cpu_seconds(bed.xen.pid) - cpu_before, used


def _summary(latencies: list[float]) -> dict[str, Any]:
    return {
        "n": len(latencies),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "mean_ms": statistics.fmean(latencies) if latencies else None,
    }


async def measure_storm_isolation(
    workdir: Path,
    *,
    pcpus: int = 16,
    seconds: float = 10.0,
    quiet_rate: float = 2.0,
    storm_rate: float = 20_000.0,
    storm_pcpu: int = 1,
) -> dict[str, Any]:
    quiet = [p for p in range(pcpus) if p != storm_pcpu]
    spec = TestbedSpec(workdir=workdir, pcpus=pcpus, pcpus_per_host=pcpus, durable_pcpus=False)
    async with LocalTestbed(spec) as bed:
        # Warm up (first calls on every channel, first records) outside both windows,
        # so that the baseline is not the cold start of the testbed.
        await _window(bed, quiet, min(2.0, seconds / 2), quiet_rate, None)
        await asyncio.sleep(0.5)
        base = await _window(bed, quiet, seconds, quiet_rate, None)
        await asyncio.sleep(1.0)
        stormy = await _window(bed, quiet, seconds, quiet_rate, (storm_pcpu, storm_rate))
        await asyncio.sleep(2.0)  # let dom0 finish what is queued
    reads = [
        e
        for e in read_events(workdir / "events-dom0.jsonl")
        if e.get("kind") == "record_read" and e.get("pcpu") in quiet and "get_ms" in e
    ]

    def in_window(window: tuple[int, int, float, dict[str, float]]) -> list[float]:
        return [e["get_ms"] for e in reads if window[0] <= e["t_mono_ns"] <= window[1] + 10**9]

    without, during = _summary(in_window(base)), _summary(in_window(stormy))
    ratio = during["p99_ms"] / without["p99_ms"] if during["p99_ms"] and without["p99_ms"] else None
    return {
        "pcpus": pcpus,
        "storm_rate": storm_rate,
        "window_s": seconds,
        "quiet_get_without_storm": without,
        "quiet_get_during_storm": during,
        "p99_ratio": ratio,
        "coordinator_cpu_percent_without_storm": round(100 * base[2] / seconds, 1),
        "coordinator_cpu_percent_during_storm": round(100 * stormy[2] / seconds, 1),
        "cpu_percent_by_process_without_storm": base[3],
        "cpu_percent_by_process_during_storm": stormy[3],
    }


def rows(sections: Mapping[str, Any]) -> list[Row]:
    """The quiet pCPUs' latency during a storm, and the coordinator's CPU."""
    rows: list[Row] = []
    storm = sections.get("storm")
    storm_ratio = figure(storm, "p99_ratio")
    storm_ratio = round(storm_ratio, 2) if storm_ratio is not None else None
    rows.append(
        Row(
            "storm",
            "quiet pCPUs' dom0 GET p99, storm / no storm",
            "x",
            storm_ratio,
            "<= 1.5",
            storm_ratio,
            at_most(storm_ratio, 1.5),
            f"{fmt(figure(storm, 'storm_rate'))}/s storm on one pCPU",
        )
    )
    rows.append(
        Row(
            "storm",
            "coordinator CPU during the storm",
            "%",
            figure(storm, "coordinator_cpu_percent_during_storm"),
            "",
            None,
            None,
            f"{fmt(figure(storm, 'coordinator_cpu_percent_without_storm'))} % without",
        )
    )
    return rows
