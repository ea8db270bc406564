"""A fake coordinator for Dom0Logger tests: a real grpc.aio server in process, on a free port.

The fake keeps per-type FIFOs of ErrorRecord protos, injects CMC one at a time
(the next only after CLEAR), serves CPE by polling only, and records every call
it receives, so the tests can check dom0's side of the seed's flow: GET, commit,
then CLEAR by record id, never the other way round. Harness holds the fake,
dom0's log and the loggers started against them; ``harness`` is its fixture.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from xenmca.dom0.log_store import LogStore
from xenmca.dom0.logger import Dom0Logger
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
from xenmca.record.v1 import record_pb2
from xenmca.rpc.events import Event, EventLog
from xenmca.rpc.retry import BackoffPolicy
from xenmca.rpc.server import BuiltServer, ServiceBinding, build_server

CMC = record_pb2.RECORD_TYPE_CMC
CPE = record_pb2.RECORD_TYPE_CPE
TOKEN = "dom0-token-for-tests"
WAIT = 10.0


class Changes:
    """Wakes waiters whenever the fake or dom0 does something; no timed sleeps."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate():
                await self._event.wait()


def make_record(pcpu: int, record_id: int, record_type: int = CMC) -> record_pb2.ErrorRecord:
    record = record_pb2.ErrorRecord(
        pcpu=pcpu,
        record_id=record_id,
        type=record_type,  # type: ignore[arg-type]
        severity=record_pb2.SEVERITY_CORRECTED,
        raw=bytes([pcpu, record_id]) * 20,
        created_monotonic_ns=1,
    )
    record.sections.add(processor=record_pb2.ProcessorSection(proc_cr_lid=pcpu))
    return record


class FakeXen(hv_grpc.HypervisorServiceServicer):
    """A tiny coordinator: CMC injected one at a time, other types polled; calls recorded."""

    def __init__(
        self, changes: Changes, db_path: Path, *, token: str | None = None, injected=(CMC,)
    ) -> None:
        self.changes = changes
        self.db_path = db_path
        self.token = token
        self.injected = set(injected)
        self.pending: dict[int, list[record_pb2.ErrorRecord]] = defaultdict(list)
        self.in_flight: dict[int, bool] = defaultdict(bool)
        self.read_id: dict[int, int | None] = defaultdict(lambda: None)
        self.calls: list[tuple[Any, ...]] = []
        self.size = 1 << 16
        self.sizes: list[int] = []
        self.size_calls = 0
        self.authorization: list[tuple[str, str | None]] = []
        self.clear_saw_committed: list[bool] = []
        self.stream: asyncio.Queue[hv_pb2.AttachDom0Response | None] | None = None
        self.attaches = 0
        self.injection_ids = itertools.count(1)
        # Fault knobs.
        self.get_statuses: list[int] = []  # forced GET answers, consumed in order
        self.fail_clears = 0  # refuse this many CLEARs (UNAVAILABLE), then re-inject
        self.get_gates: dict[int, asyncio.Event] = {}  # GET of that type waits on it
        self.active_gets: dict[int, int] = defaultdict(int)
        self.max_active_gets: dict[int, int] = defaultdict(int)

    # -- driving the fake ------------------------------------------------------------
    def add(self, *records: record_pb2.ErrorRecord) -> None:
        for record in records:
            self.pending[record.type].append(record)
        for record_type in {r.type for r in records}:
            self._pump(record_type)

    def inject(self, record_type: int, *, reinjected: bool = False) -> None:
        if self.stream is not None:
            self.stream.put_nowait(
                hv_pb2.AttachDom0Response(
                    type=record_type,  # type: ignore[arg-type]
                    injection_id=next(self.injection_ids),
                    reinjected=reinjected,
                )
            )

    def _pump(self, record_type: int) -> None:
        idle = record_type in self.injected and not self.in_flight[record_type]
        if idle and self.pending[record_type] and self.stream is not None:
            self.in_flight[record_type] = True
            self.inject(record_type)

    def _reinject_soon(self, record_type: int) -> None:
        asyncio.get_running_loop().call_soon(lambda: self.inject(record_type, reinjected=True))

    def _authorized(self, context: grpc.aio.ServicerContext, method: str) -> bool:
        value = dict(context.invocation_metadata() or ()).get("authorization")
        self.authorization.append((method, value))
        return self.token is None or value == f"Bearer {self.token}"

    def _in_db(self, pcpu: int, record_id: int) -> bool:
        with sqlite3.connect(self.db_path) as conn:
            row = conn.execute(
                "SELECT 1 FROM records WHERE pcpu = ? AND record_id = ?", (pcpu, record_id)
            ).fetchone()
        return row is not None

    # -- HypervisorService -----------------------------------------------------------
    async def AttachDom0(self, request, context) -> AsyncIterator[hv_pb2.AttachDom0Response]:
        if not self._authorized(context, "AttachDom0"):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "dom0 token required")
        queue: asyncio.Queue[hv_pb2.AttachDom0Response | None] = asyncio.Queue()
        self.stream = queue
        self.attaches += 1
        for record_type in list(self.in_flight):
            if self.in_flight[record_type]:
                self.inject(record_type, reinjected=True)
        for record_type in list(self.pending):
            self._pump(record_type)
        self.changes.notify()
        try:
            while (interrupt := await queue.get()) is not None:
                yield interrupt
        finally:
            if self.stream is queue:
                self.stream = None

    async def GetStateInfoSize(self, request, context) -> hv_pb2.GetStateInfoSizeResponse:
        """SAL_GET_STATE_INFO_SIZE: `sizes` answers in turn, then `size` (not in `calls`)."""
        self.size_calls += 1
        size = self.sizes.pop(0) if self.sizes else self.size
        return hv_pb2.GetStateInfoSizeResponse(sal_status=0, size=size)

    async def GetStateInfo(self, request, context) -> hv_pb2.GetStateInfoResponse:
        record_type = request.type
        if not self._authorized(context, "GetStateInfo"):
            return hv_pb2.GetStateInfoResponse(sal_status=-5)
        self.active_gets[record_type] += 1
        self.max_active_gets[record_type] = max(
            self.max_active_gets[record_type], self.active_gets[record_type]
        )
        self.changes.notify()
        try:
            gate = self.get_gates.get(record_type)
            if gate is not None:
                await gate.wait()
            return self._get(record_type)
        finally:
            self.active_gets[record_type] -= 1
            self.changes.notify()

    def _get(self, record_type: int) -> hv_pb2.GetStateInfoResponse:
        if self.get_statuses:
            status = self.get_statuses.pop(0)
            self.calls.append(("get", record_type, status))
            self._reinject_soon(record_type)  # the real coordinator keeps the entry
            return hv_pb2.GetStateInfoResponse(sal_status=status)
        queue = self.pending[record_type]
        if not queue:
            self.calls.append(("get", record_type, -5))
            return hv_pb2.GetStateInfoResponse(sal_status=-5)
        record = queue[0]
        self.read_id[record_type] = record.record_id
        self.calls.append(("get", record_type, record.pcpu, record.record_id))
        return hv_pb2.GetStateInfoResponse(sal_status=0, record=record, by_ipi=record.pcpu != 0)

    async def ClearStateInfo(self, request, context) -> hv_pb2.ClearStateInfoResponse:
        record_type = request.type
        record_id = request.record_id if request.HasField("record_id") else None
        if not self._authorized(context, "ClearStateInfo"):
            return hv_pb2.ClearStateInfoResponse(sal_status=-5)
        queue = self.pending[record_type]
        if not queue or record_id is None or record_id != self.read_id[record_type]:
            self.calls.append(("clear", record_type, record_id, -5))
            self.changes.notify()
            return hv_pb2.ClearStateInfoResponse(sal_status=-5)
        record = queue[0]
        self.clear_saw_committed.append(self._in_db(record.pcpu, record.record_id))
        if self.fail_clears:
            self.fail_clears -= 1
            self.calls.append(("clear-failed", record_type, record_id))
            if not self.fail_clears:
                self._reinject_soon(record_type)
            self.changes.notify()
            await context.abort(grpc.StatusCode.UNAVAILABLE, "reply lost")
        queue.pop(0)
        self.read_id[record_type] = None
        self.in_flight[record_type] = False
        self.calls.append(("clear", record_type, record.pcpu, record_id, 0))
        self._pump(record_type)
        self.changes.notify()
        return hv_pb2.ClearStateInfoResponse(
            sal_status=0, cleared_record_id=record_id, pcpu=record.pcpu
        )

    def cleared(self) -> list[tuple[int, int]]:
        return [(c[2], c[3]) for c in self.calls if c[0] == "clear" and c[-1] == 0]


async def start_fake(fake: FakeXen, port: int = 0) -> BuiltServer:
    full_name = hv_pb2.DESCRIPTOR.services_by_name["HypervisorService"].full_name
    built = build_server(
        f"127.0.0.1:{port}",
        [
            ServiceBinding(
                full_name, lambda s: hv_grpc.add_HypervisorServiceServicer_to_server(fake, s)
            )
        ],
    )
    await built.server.start()
    return built


class Harness:
    """A fake coordinator, dom0's log, and the loggers started against them."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.db_path = tmp_path / "dom0.sqlite"
        self.changes = Changes()
        self.events: list[Event] = []
        self.store: LogStore | None = None
        self.servers: list[BuiltServer] = []
        self.loggers: list[Dom0Logger] = []

    def fake(self, **kwargs: Any) -> FakeXen:
        return FakeXen(self.changes, self.db_path, **kwargs)

    async def serve(self, fake: FakeXen, port: int = 0) -> int:
        built = await start_fake(fake, port)
        self.servers.append(built)
        return built.port

    async def logger(self, port: int, **kwargs: Any) -> Dom0Logger:
        if self.store is None:
            self.store = await LogStore.open(self.db_path)
        events = EventLog("dom0")
        events.subscribe(self.events.append)
        events.subscribe(lambda _: self.changes.notify())
        kwargs.setdefault("polled_types", {})
        kwargs.setdefault("backoff", BackoffPolicy(initial=0.01, maximum=0.05, jitter=0.5))
        kwargs.setdefault("rng", random.Random(1))
        logger = Dom0Logger(f"127.0.0.1:{port}", self.store, events=events, **kwargs)
        await logger.start()
        self.loggers.append(logger)
        return logger

    def kinds(self, *wanted: str) -> list[Event]:
        return [e for e in self.events if e["kind"] in wanted]

    def db_rows(self) -> list[tuple[int, int, str]]:
        with sqlite3.connect(self.db_path) as conn:
            return conn.execute("SELECT pcpu, record_id, type FROM records ORDER BY id").fetchall()

    async def close(self) -> None:
        for logger in self.loggers:
            await logger.stop(grace=2.0)
        for server in self.servers:
            await server.stop(grace=0)
        if self.store is not None:
            await self.store.close()


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        await h.close()
