"""Measure a pCPU host: start-up time and memory per hosted pCPU, as JSON.

    python -m xenmca.pcpu.measure --pcpus 1024 [--state-dir DIR]

One warm-up host (one pCPU) is started and stopped first so that gRPC's own
start-up cost is not charged to the pCPUs; then N pCPUs are started (each its
own grpc.aio server on its own port 0), every one is asked DescribePcpu, and
the process's RSS, threads and open files are compared with before.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path

import grpc

from xenmca.pcpu.server import PcpuHost
from xenmca.rpc.channels import open_channel
from xenmca.sal.v1 import sal_service_pb2 as sal
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

FDS_PER_PCPU = 8
"""Generous allowance of file descriptors per hosted pCPU (listener, epoll, wakeups)."""


def _status(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def raise_fd_limit(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards needed (up to the hard limit); returns the new one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


async def _answer_all(addresses: dict[int, str], concurrency: int) -> tuple[int, list[str]]:
    """(pCPUs that answered DescribePcpu with their own number, errors of the others)."""
    gate = asyncio.Semaphore(concurrency)
    errors: list[str] = []

    async def ask(pcpu: int, address: str) -> bool:
        async with gate, open_channel(address) as channel:
            try:
                reply = await sal_grpc.SalServiceStub(channel).DescribePcpu(
                    sal.DescribePcpuRequest(), timeout=30
                )
            except grpc.aio.AioRpcError as exc:
                errors.append(f"pCPU {pcpu}: {exc.code().name} {exc.details()}")
                return False
            return bool(reply.pcpu == pcpu)

    answers = await asyncio.gather(*(ask(p, a) for p, a in addresses.items()))
    return sum(answers), errors


async def measure(pcpus: int, state_dir: Path | None, concurrency: int) -> dict[str, object]:
    async with PcpuHost([0]):
        pass
    rss_before, threads_before, files_before = _status("VmRSS"), _status("Threads"), _open_files()
    host = PcpuHost(range(pcpus), state_dir=state_dir)
    started = time.perf_counter()
    await host.start()
    try:
        startup = time.perf_counter() - started
        rss_started = _status("VmRSS")
        files_started, threads_started = _open_files(), _status("Threads")
        asked = time.perf_counter()
        answered, errors = await _answer_all(host.addresses, concurrency)
        answer_all = time.perf_counter() - asked
        rss_answered = _status("VmRSS")
    finally:
        stopping = time.perf_counter()
        await host.stop(grace=1.0)
        stop = time.perf_counter() - stopping
    return {
        "pcpus": pcpus,
        "durable": state_dir is not None,
        "startup_seconds": round(startup, 3),
        "startup_ms_per_pcpu": round(startup * 1000 / pcpus, 3),
        "answered": answered,
        "errors": errors[:5],
        "describe_all_seconds": round(answer_all, 3),
        "stop_seconds": round(stop, 3),
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_started_mib": round(rss_started / 1024, 1),
        "rss_after_answering_mib": round(rss_answered / 1024, 1),
        "rss_per_pcpu_kib": round((rss_started - rss_before) / pcpus, 1),
        "rss_per_pcpu_after_answering_kib": round((rss_answered - rss_before) / pcpus, 1),
        "open_files_per_pcpu": round((files_started - files_before) / pcpus, 2),
        "threads_added": threads_started - threads_before,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xenmca.pcpu.measure", description=__doc__)
    parser.add_argument("--pcpus", type=int, default=64, help="how many pCPUs to host (64)")
    parser.add_argument("--state-dir", type=Path, help="durable stores in DIR (default memory)")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="DescribePcpu calls in flight at once (64)"
    )
    args = parser.parse_args(argv)
    if args.pcpus < 1:
        parser.error("--pcpus must be at least 1")
    limit = raise_fd_limit(args.pcpus * FDS_PER_PCPU + 256)
    result = asyncio.run(measure(args.pcpus, args.state_dir, args.concurrency))
    result["fd_limit"] = limit
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
