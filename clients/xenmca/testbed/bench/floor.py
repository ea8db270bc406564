"""Benchmark floors, measured in the same run as the real flow.

* A bare grpc.aio unary round trip between two processes: a tiny generic-handler
  server in a child process (`python -c`), answering a ~10-byte request with a
  reply the size of a GetStateInfoResponse that carries one ErrorRecord with one
  processor section (built by the pCPU records module, as the firmware does).
* A bare durable SQLite commit: WAL, synchronous=FULL, one ~1 KiB blob inserted
  per transaction, in the directory dom0's log lives in.

The floor of the faithful flow is 1 / (4 round trips + 1 commit) records/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import statistics
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc

from xenmca.pcpu import records
from xenmca.pcpu.model import StoredRecord
from xenmca.record.v1 import record_pb2
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.testbed.bench.rows import Row, figure
from xenmca.vocab import RecordType

ECHO_METHOD = "/xenmca.bench.v1.Floor/Call"

# The child: a generic-handler aio server that answers every call with reply_size bytes.
_SERVER_SCRIPT = """
import asyncio, sys
import grpc

async def main(reply_size):
    reply = bytes(reply_size)

    async def call(request, context):
        return reply

    handler = grpc.method_handlers_generic_handler(
        "xenmca.bench.v1.Floor", {"Call": grpc.unary_unary_rpc_method_handler(call)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    await server.stop(None)

asyncio.run(main(int(sys.argv[1])))
"""


@dataclass(frozen=True)
class Timing:
    """Summary of n timed operations, in milliseconds."""

    n: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float

    @classmethod
    def of(cls, samples_ms: list[float]) -> Timing:
        ordered = sorted(samples_ms)
        return cls(
            n=len(ordered),
            p50_ms=round(percentile(ordered, 0.50), 4),
            p99_ms=round(percentile(ordered, 0.99), 4),
            mean_ms=round(statistics.fmean(ordered), 4),
            min_ms=round(ordered[0], 4),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an already sorted, non-empty list."""
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def sample_reply() -> bytes:
    """A GetStateInfoResponse with one CMC record (one processor section), encoded.

    Fixed timestamps (a real record's are of the same magnitude), so that the size
    is the same on every call: varint-encoded times would otherwise vary by a byte.
    """
    pcpu, record_id, severity = 5, 1234, record_pb2.SEVERITY_CORRECTED
    wall_ns = 1_795_000_000_123_456_789
    raw, _ = records.raw_factory(pcpu, RecordType.CMC, severity, None)(record_id, wall_ns)
    stored = StoredRecord(
        record_id=record_id,
        record_type=RecordType.CMC,
        severity=severity,
        created_wall_ns=wall_ns,
        created_monotonic_ns=86_400_123_456_789,
        raw=raw,
    )
    reply = sal_pb2.GetStateInfoResponse(sal_status=0, record=records.error_record(pcpu, stored))
    return reply.SerializeToString()


def sample_request() -> bytes:
    """A ClearStateInfoRequest by record id: the flow's requests are about this size."""
    request = sal_pb2.ClearStateInfoRequest(type=RecordType.CMC, record_id=1234)  # type: ignore[arg-type]
    return request.SerializeToString()


async def _read_port(process: asyncio.subprocess.Process, within: float) -> int:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), within)
    if not line.strip().isdigit():
        raise RuntimeError(f"floor server did not report its port (got {line!r})")
    return int(line)


async def measure_rtt(calls: int = 2000, warmup: int = 200) -> dict[str, Any]:
    """p50 (and more) of `calls` sequential unary round trips to a server in a child process."""
    request, reply_size = sample_request(), len(sample_reply())
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _SERVER_SCRIPT,
        str(reply_size),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        port = await _read_port(process, 30.0)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(ECHO_METHOD)
            await channel.channel_ready()
            for _ in range(warmup):
                await call(request)
            samples: list[float] = []
            for _ in range(calls):
                started = time.perf_counter()
                answer = await call(request)
                samples.append((time.perf_counter() - started) * 1000)
            if len(answer) != reply_size:
                raise RuntimeError(f"floor server answered {len(answer)} bytes, not {reply_size}")
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    return {
        "request_bytes": len(request),
        "reply_bytes": reply_size,
        **Timing.of(samples).as_dict(),
    }


def _commit_loop(path: Path, commits: int, warmup: int, blob_bytes: int) -> list[float]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS floor (id INTEGER PRIMARY KEY, raw BLOB NOT NULL)")
        blob = os.urandom(blob_bytes)
        samples: list[float] = []
        for index in range(warmup + commits):
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO floor (raw) VALUES (?)", (blob,))
            conn.execute("COMMIT")
            if index >= warmup:
                samples.append((time.perf_counter() - started) * 1000)
        return samples
    finally:
        conn.close()


async def measure_commit(
    directory: Path, commits: int = 300, warmup: int = 20, blob_bytes: int = 1024
) -> dict[str, Any]:
    """One durable transaction per insert of a blob_bytes blob, in directory (a scratch file)."""
    path = directory / "floor-commit.sqlite"
    samples = await asyncio.to_thread(_scratch_commits, path, commits, warmup, blob_bytes)
    return {"blob_bytes": blob_bytes, **Timing.of(samples).as_dict()}


def _scratch_commits(path: Path, commits: int, warmup: int, blob_bytes: int) -> list[float]:
    """The commit loop on a scratch database that is removed afterwards."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _commit_loop(path, commits, warmup, blob_bytes)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def floor_records_per_s(rtt_ms: float, commit_ms: float) -> float:
    """The faithful flow's floor: one record costs 4 unary round trips and one durable commit."""
    return 1000.0 / (4 * rtt_ms + commit_ms)


async def measure_floors(
    directory: Path, *, rtt_calls: int = 3000, commits: int = 400
) -> dict[str, Any]:
    """Both floors and the records/s floor derived from them (p50 round trip, p50 commit)."""
    rtt = await measure_rtt(calls=rtt_calls)
    commit = await measure_commit(directory, commits=commits)
    return {
        "rtt": rtt,
        "commit": commit,
        "records_per_s": round(floor_records_per_s(rtt["p50_ms"], commit["p50_ms"]), 1),
        "formula": "1 / (4 x rtt.p50 + commit.p50)",
    }


def rows(sections: Mapping[str, Any]) -> list[Row]:
    """The floors' rows: a bare round trip, a bare durable commit, and 1/(4 RTT + commit)."""
    floors = sections.get("floors")
    rtt = figure(floors, "rtt_p50_ms")
    commit = figure(floors, "commit_p50_ms")
    floor_rps = figure(floors, "records_per_s")
    samples = len(figure(floors, "samples") or [])
    rows = [
        Row("floors", "floor: bare unary round trip p50", "ms", rtt, note=f"median of {samples}"),
        Row("floors", "floor: durable SQLite commit p50", "ms", commit, note="WAL, FULL, 1 KiB"),
        Row("floors", "floor: 1/(4 RTT + commit)", "rec/s", floor_rps),
    ]
    return rows
