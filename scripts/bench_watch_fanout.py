"""Measure WatchInterrupts fan-out: one reading subscriber's rate and the pCPU host's CPU.

Not a test (pytest does not collect it). A pCPU host (one pCPU, no token book:
every caller may watch) runs in a child process so its CPU time is its own; this
process opens one measured subscriber, then ``--others`` extra subscribers that
read or never read, injects ``--records`` records in batches of ``--batch`` and
times the measured subscriber until it has received them all.

    python scripts/bench_watch_fanout.py --others 200 --mode idle
    python scripts/bench_watch_fanout.py --others 200 --mode reading
    python scripts/bench_watch_fanout.py --others 0

Run against another checkout's code with PYTHONPATH=<root>/protos:<root>/services:<root>/clients
(the host child inherits it; the first line printed names the code it runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter

import grpc
from google.rpc import error_details_pb2, status_pb2

from xenmca.record.v1 import record_pb2
from xenmca.rpc.errors import error_info_of
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc


async def serve(capacity: int) -> None:
    import xenmca.pcpu.interrupts as interrupts
    from xenmca.pcpu.server import PcpuHost

    async with PcpuHost([0], capacity=capacity) as host:
        print(json.dumps({"address": host.addresses[0], "code": interrupts.__file__}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drain(call: grpc.aio.UnaryStreamCall, outcome: Counter[str]) -> None:
    try:
        async for _ in call:
            pass
        outcome["ended"] += 1
    except grpc.aio.AioRpcError as error:
        info = error_info_of(error)
        outcome[f"{error.code().name}/{info.reason if info else '-'}"] += 1


async def measure(
    args: argparse.Namespace, child: subprocess.Popen[str], hello: dict[str, str]
) -> dict[str, object]:
    address = hello["address"]
    channels = [grpc.aio.insecure_channel(address) for _ in range(3)]
    others_channel, measured_channel, control_channel = channels
    outcome: Counter[str] = Counter()
    tasks: list[asyncio.Task[None]] = []
    calls = []
    try:
        measured = sal_grpc.SalServiceStub(measured_channel).WatchInterrupts(
            sal_pb2.WatchInterruptsRequest()
        )
        calls.append(measured)
        await measured.initial_metadata()
        assert not measured.done(), measured.code()
        others = sal_grpc.SalServiceStub(others_channel)
        for _ in range(args.others):
            call = others.WatchInterrupts(sal_pb2.WatchInterruptsRequest())
            calls.append(call)
            await call.initial_metadata()
            if call.done():  # refused at once
                await drain(call, outcome)
            elif args.mode == "reading":
                tasks.append(asyncio.create_task(drain(call, outcome)))
            else:
                tasks.append(asyncio.create_task(watch_end(call, outcome)))
        control = sal_grpc.SalServiceStub(control_channel)
        cpu_before = cpu_seconds(child.pid)
        start = time.perf_counter()
        received = 0

        async def inject() -> None:
            for _ in range(args.records // args.batch):
                await control.InjectError(
                    sal_pb2.InjectErrorRequest(type=record_pb2.RECORD_TYPE_CMC, count=args.batch)
                )

        injector = asyncio.create_task(inject())
        async with asyncio.timeout(args.within):
            async for _ in measured:
                received += 1
                if received == args.records:
                    break
        elapsed = time.perf_counter() - start
        await injector
        cpu = cpu_seconds(child.pid) - cpu_before
        measured.cancel()
        await asyncio.sleep(0.5)  # let the others' outcomes arrive
        outcome["still open"] = sum(1 for task in tasks if not task.done())
        return {
            "code": hello["code"],
            "others": args.others,
            "mode": args.mode,
            "records": args.records,
            "seconds": round(elapsed, 2),
            "rate_per_s": round(received / elapsed),
            "host_cpu_s": round(cpu, 2),
            "others_outcome": dict(outcome),
        }
    finally:
        for call in calls:
            call.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()


async def watch_end(call: grpc.aio.UnaryStreamCall, outcome: Counter[str]) -> None:
    """A subscriber that never reads: only learn how its call ends."""
    code = await call.code()
    reason = "-"
    for key, value in await call.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            info = error_details_pb2.ErrorInfo()
            status_pb2.Status.FromString(value).details[0].Unpack(info)
            reason = info.reason
    outcome[f"{code.name}/{reason}"] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--capacity", type=int, default=1_000_000, help=argparse.SUPPRESS)
    parser.add_argument("--others", type=int, default=200)
    parser.add_argument("--mode", choices=["idle", "reading"], default="idle")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--within", type=float, default=300.0)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.capacity))
        return
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--capacity", str(args.records + 1)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    try:
        hello = json.loads(child.stdout.readline())
        print(json.dumps(asyncio.run(measure(args, child, hello))))
    finally:
        child.stdin.close()
        child.wait(10)


if __name__ == "__main__":
    main()
