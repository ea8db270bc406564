"""The bare skeleton's three processes: the same hops as the faithful flow, and nothing else.

`python -m xenmca.testbed.bench.skeleton_roles ROLE ...`, started by bench.skeleton:

- `pcpu PORT_FILE COUNT SIZE`: one grpc.aio server holding COUNT records of SIZE bytes;
  GET answers the oldest, CLEAR drops it.
- `xen PORT_FILE PCPU_ADDRESS`: one grpc.aio server that forwards each GET and CLEAR to
  the pCPU over one channel.
- `dom0 XEN_ADDRESS DB COUNT`: for each record, GET through xen, one SQLite commit (WAL,
  synchronous=FULL, as dom0's log), then CLEAR through xen; prints
  `{"records": N, "seconds": S, "first_to_last_s": F, "cpu_s": C}` on stdout (C: its
  own CPU over the loop).

Raw-bytes unary methods (no protobuf decoding, no interceptors, no events, no metrics,
no retries): what Python gRPC and SQLite cost for one record, so the faithful flow's
figure can be compared with the least that the same hops can do on this machine. The
processes run on the event loop the components run on (xenmca.rpc.event_loop,
XENMCA_EVENT_LOOP), so that the comparison is like for like.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import grpc

from xenmca.rpc import event_loop, hop_trace
from xenmca.rpc.lifecycle import die_with_parent_if_asked

SERVICE = "xenmca.bench.Skeleton"
GET = f"/{SERVICE}/Get"
CLEAR = f"/{SERVICE}/Clear"


def _handler(get: object, clear: object) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Get": grpc.unary_unary_rpc_method_handler(get),  # type: ignore[arg-type]
            "Clear": grpc.unary_unary_rpc_method_handler(clear),  # type: ignore[arg-type]
        },
    )


def _write_port(port_file: Path, port: int) -> None:
    port_file.write_text(str(port))


async def _serve(port_file: Path, handler: grpc.GenericRpcHandler) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    _write_port(port_file, port)
    await server.wait_for_termination()


async def pcpu(port_file: Path, count: int, size: int) -> None:
    records = collections.deque(i.to_bytes(8, "little") + bytes(size - 8) for i in range(count))

    async def get(request: bytes, context: object) -> bytes:
        hop_trace.mark("pcpu.get.in")
        return records[0] if records else b""

    async def clear(request: bytes, context: object) -> bytes:
        hop_trace.mark("pcpu.clear.in")
        if records and records[0][:8] == request:
            records.popleft()
        return b""

    await _serve(port_file, _handler(get, clear))


async def xen(port_file: Path, pcpu_address: str) -> None:
    channel = grpc.aio.insecure_channel(pcpu_address)
    pcpu_get = channel.unary_unary(GET)
    pcpu_clear = channel.unary_unary(CLEAR)

    async def get(request: bytes, context: object) -> bytes:
        hop_trace.mark("xen.get.in")
        hop_trace.mark("xen.ipi.get.send")
        reply: bytes = await pcpu_get(request)
        hop_trace.mark("xen.ipi.get.reply")
        return reply

    async def clear(request: bytes, context: object) -> bytes:
        hop_trace.mark("xen.clear.in")
        hop_trace.mark("xen.ipi.clear.send")
        reply: bytes = await pcpu_clear(request)
        hop_trace.mark("xen.ipi.clear.reply")
        return reply

    await _serve(port_file, _handler(get, clear))


async def dom0(xen_address: str, db: Path, count: int) -> dict[str, float | int]:
    log = sqlite3.connect(db, isolation_level=None)
    log.execute("PRAGMA journal_mode=WAL")
    log.execute("PRAGMA synchronous=FULL")
    log.execute("CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY, raw BLOB)")
    async with grpc.aio.insecure_channel(xen_address) as channel:
        get, clear = channel.unary_unary(GET), channel.unary_unary(CLEAR)
        await channel.channel_ready()
        started, cpu_started = time.monotonic(), time.process_time()
        stamps = []
        for _ in range(count):
            hop_trace.mark("dom0.get.send")
            record: bytes = await get(b"")
            hop_trace.mark("dom0.get.reply")
            hop_trace.mark("dom0.commit.start")
            log.execute("BEGIN")
            log.execute("INSERT INTO records (raw) VALUES (?)", (record,))
            log.execute("COMMIT")
            hop_trace.mark("dom0.commit.end")
            stamps.append(time.monotonic())
            hop_trace.mark("dom0.clear.send")
            await clear(record[:8])
            hop_trace.mark("dom0.clear.reply")
        seconds = time.monotonic() - started
        cpu_s = time.process_time() - cpu_started
    log.close()
    return {
        "records": count,
        "seconds": seconds,
        "first_to_last_s": stamps[-1] - stamps[0],
        "cpu_s": cpu_s,
    }


def main(argv: list[str]) -> None:
    die_with_parent_if_asked()  # a bench killed outright leaves no server behind
    role, *rest = argv
    # The bench stops the servers with SIGTERM: their hop trace (if on) is written first.
    signal.signal(signal.SIGTERM, lambda *_: (hop_trace.flush(), os._exit(0)))
    if role == "pcpu":
        event_loop.run(lambda: pcpu(Path(rest[0]), int(rest[1]), int(rest[2])))
    elif role == "xen":
        event_loop.run(lambda: xen(Path(rest[0]), rest[1]))
    elif role == "dom0":
        print(json.dumps(event_loop.run(lambda: dom0(rest[0], Path(rest[1]), int(rest[2])))))
    else:
        raise SystemExit(f"unknown role {role!r}: pcpu, xen or dom0")


if __name__ == "__main__":
    main(sys.argv[1:])
