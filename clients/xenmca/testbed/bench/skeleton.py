"""The `skeleton` bench section: the bare flow of the same hops, interleaved with the faithful one.

Three processes (bench.skeleton_roles): dom0 -> xen -> pCPU for GET, a WAL +
synchronous=FULL commit, dom0 -> xen -> pCPU for CLEAR; raw-bytes unary methods with
a payload the size of a real CMC record's ErrorRecord, and no interceptors, events,
metrics or retries. The section runs skeleton, faithful, skeleton, faithful, ... so
that the machine's noise hits both alike, and reports the medians, their ratio and
each process's CPU per record for both: what the faithful flow loses beyond the
skeleton is xenmca's own work, not Python gRPC's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xenmca.pcpu.model import StoredRecord
from xenmca.pcpu.records import error_record, raw_factory
from xenmca.record.v1 import record_pb2
from xenmca.rpc import event_loop
from xenmca.testbed.bench.flow import FlowShape, measure_throughput
from xenmca.testbed.bench.rows import Row, at_least, figure, ratio
from xenmca.testbed.infra.processes import child_env, cpu_seconds
from xenmca.vocab import RecordType

ROLES = "xenmca.testbed.bench.skeleton_roles"


def record_size() -> int:
    """Bytes of the GetStateInfo reply's record: a CMC record as the firmware makes it."""
    now = time.time_ns()
    corrected = record_pb2.SEVERITY_CORRECTED
    raw, _ = raw_factory(0, int(RecordType.CMC), corrected, None)(1, now)
    stored = StoredRecord(1, int(RecordType.CMC), corrected, now, 1, raw)
    return len(error_record(0, stored).SerializeToString())


async def _start(workdir: Path, loop: str, role: str, *args: str) -> asyncio.subprocess.Process:
    log = (workdir / f"skeleton-{role}.log").open("ab")
    with log:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", ROLES, role, *args,
            stdout=asyncio.subprocess.PIPE if role == "dom0" else log, stderr=log,
            env=child_env({event_loop.EVENT_LOOP_ENV: loop}),
        )  # fmt: skip


def _read_port(port_file: Path) -> str:
    """The port a server wrote, "" until it has."""
    try:
        return port_file.read_text()
    except FileNotFoundError:
        return ""


def _fresh(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in workdir.glob("skeleton*"):
        stale.unlink()


async def _port(process: asyncio.subprocess.Process, port_file: Path, within: float = 30) -> str:
    deadline = time.monotonic() + within
    while not (port := _read_port(port_file)):
        if process.returncode is not None:
            raise RuntimeError(f"skeleton server exited ({process.returncode}); see its log")
        if time.monotonic() > deadline:
            raise TimeoutError(f"skeleton server did not listen within {within:g}s")
        await asyncio.sleep(0.02)
    return f"127.0.0.1:{port}"


async def measure_skeleton(
    workdir: Path, records: int, size: int, loop: str | None = None
) -> dict[str, Any]:
    """One run of the skeleton over `records` records of `size` bytes, its processes on
    `loop` (default: the components' loop, xenmca.rpc.event_loop)."""
    loop = loop or event_loop.chosen()
    _fresh(workdir)
    servers: list[asyncio.subprocess.Process] = []
    try:
        pcpu = await _start(
            workdir, loop, "pcpu", str(workdir / "skeleton-pcpu.port"), str(records), str(size)
        )
        servers.append(pcpu)
        pcpu_address = await _port(pcpu, workdir / "skeleton-pcpu.port")
        xen = await _start(workdir, loop, "xen", str(workdir / "skeleton-xen.port"), pcpu_address)
        servers.append(xen)
        xen_address = await _port(xen, workdir / "skeleton-xen.port")
        before = {"pcpu": cpu_seconds(pcpu.pid), "xen": cpu_seconds(xen.pid)}
        dom0 = await _start(
            workdir, loop, "dom0", xen_address, str(workdir / "skeleton.sqlite"), str(records)
        )
        out, _ = await dom0.communicate()
        used = {
            name: cpu_seconds(p.pid) - before[name] for name, p in (("pcpu", pcpu), ("xen", xen))
        }
        if dom0.returncode != 0:
            raise RuntimeError(f"skeleton dom0 exited ({dom0.returncode}); see its log")
    finally:
        for server in servers:
            with contextlib.suppress(ProcessLookupError):
                server.terminate()  # SIGTERM: a server writes its hop trace (if on), then exits
            await server.wait()
    figures = json.loads(out)
    used["dom0"] = figures["cpu_s"]
    span = figures["first_to_last_s"]
    return {
        "records": records,
        "event_loop": loop,
        "payload_bytes": size,
        "records_per_s": round((records - 1) / span, 1) if span else None,
        "cpu_ms_per_record": {
            name: round(1000 * seconds / records, 3) for name, seconds in used.items()
        },
    }


async def measure_interleaved(workdir: Path, shape: FlowShape, rounds: int) -> dict[str, Any]:
    """skeleton, faithful, skeleton, faithful, ...: both medians, their ratio, CPU per record.

    The skeleton runs on the components' event loop (like for like). When that is not
    asyncio's own, each round also runs the skeleton on asyncio's loop, first: the
    stock Python gRPC figure, reported beside the other."""
    size = record_size()
    loop = event_loop.chosen()
    skeletons: list[dict[str, Any]] = []
    stock: list[dict[str, Any]] = []
    faithfuls: list[dict[str, Any]] = []
    for index in range(rounds):
        if loop != "asyncio":
            stock.append(
                await measure_skeleton(workdir / f"skeleton-asyncio-{index}", shape.records,
                                       size, "asyncio")
            )  # fmt: skip
        skeletons.append(await measure_skeleton(workdir / f"skeleton-{index}", shape.records, size))
        faithfuls.append(await measure_throughput(workdir / f"faithful-{index}", shape))
    skeleton_rps = statistics.median(run["records_per_s"] for run in skeletons)
    faithful_rps = statistics.median(run["records_per_s"] for run in faithfuls)
    per_round = ("skeleton on asyncio, " if stock else "") + "skeleton, faithful"
    result: dict[str, Any] = {
        "rounds": rounds,
        "event_loop": loop,
        "order": ", ".join([per_round] * rounds),
        "payload_bytes": size,
        "skeleton_records_per_s": skeleton_rps,
        "faithful_records_per_s": faithful_rps,
        "faithful_over_skeleton": round(faithful_rps / skeleton_rps, 3),
        "skeleton_runs": skeletons,
        "faithful_runs": [
            {key: run[key] for key in ("records_per_s", "cpu_ms_per_record", "hosts", "pcpus")}
            for run in faithfuls
        ],
    }
    if stock:
        stock_rps = statistics.median(run["records_per_s"] for run in stock)
        result["skeleton_asyncio_records_per_s"] = stock_rps
        result["faithful_over_skeleton_asyncio"] = round(faithful_rps / stock_rps, 3)
        result["skeleton_asyncio_runs"] = stock
    return result


def rows(sections: Mapping[str, Any]) -> list[Row]:
    """faithful / skeleton and pipelined / skeleton (same run), and the CPU per record of each."""
    skeleton = sections.get("skeleton")
    skeleton_rps = figure(skeleton, "skeleton_records_per_s")
    faithful_share = figure(skeleton, "faithful_over_skeleton")
    pipelined_share = ratio(figure(sections.get("pipelined"), "records_per_s"), skeleton_rps)
    skeleton_cpu = _median_cpu(figure(skeleton, "skeleton_runs"))
    faithful_cpu = _median_cpu(figure(skeleton, "faithful_runs"))
    loop = figure(skeleton, "event_loop") or "asyncio"
    stock_rps = figure(skeleton, "skeleton_asyncio_records_per_s")
    stock_rows = (
        [
            Row(
                "skeleton",
                "bare skeleton on asyncio's own loop",
                "rec/s",
                stock_rps,
                "",
                None,
                None,
                "stock Python gRPC, same rounds",
            ),
            Row(
                "skeleton",
                "faithful / skeleton on asyncio's loop",
                "x",
                figure(skeleton, "faithful_over_skeleton_asyncio"),
                "",
                None,
                None,
                f"faithful on {loop}",
            ),
        ]
        if stock_rps is not None
        else []
    )
    return [
        Row("skeleton", "bare skeleton of the same hops", "rec/s", skeleton_rps, "", None, None,
            f"3 processes, raw-bytes unary calls, WAL + synchronous=FULL commit; {loop}"),
        *stock_rows,
        Row("skeleton", "faithful / skeleton (interleaved)", "x", faithful_share,
            ">= 0.8 (goal 0.9)", faithful_share, at_least(faithful_share, 0.8)),
        Row("skeleton", "pipelined / skeleton", "x", pipelined_share, ">= 1.5",
            pipelined_share, at_least(pipelined_share, 1.5)),
        Row("skeleton", "CPU per record: skeleton", "ms", skeleton_cpu, "", None, None,
            "pCPU + xen + dom0 processes"),
        Row("skeleton", "CPU per record: faithful", "ms", faithful_cpu, "", None, None,
            "pCPU hosts + coordinator + dom0"),
    ]  # fmt: skip


def _median_cpu(runs: list[dict[str, Any]] | None) -> float | None:
    """The median over runs of the CPU ms per record summed over the processes."""
    totals = [sum(run["cpu_ms_per_record"].values()) for run in runs or () if run]
    return round(statistics.median(totals), 3) if totals else None
