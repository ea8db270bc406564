"""The pCPU record store on its own: durability in SQLite, one transaction per batch, identity."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import grpc
import pytest

from xenmca.pcpu.durable import DATABASE_NAME, FirmwareDatabase, StateDirError
from xenmca.pcpu.firmware import Injection, PcpuFirmware
from xenmca.pcpu.interrupts import InterruptLine, SubscriptionLagged
from xenmca.pcpu.server import PcpuHost, create_server
from xenmca.pcpu.store import RecordStore, StoreChange
from xenmca.record.v1 import record_pb2
from xenmca.rpc.channels import open_channel
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.events import EventLog
from xenmca.rpc.identity import OPERATOR, XEN, TokenBook, call_metadata
from xenmca.sal.v1 import sal_service_pb2 as sal
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

CMC = record_pb2.RECORD_TYPE_CMC
CPE = record_pb2.RECORD_TYPE_CPE
CORRECTED = record_pb2.SEVERITY_CORRECTED


def sqlite_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.suffix == ".sqlite"]


def firmware_on(database: FirmwareDatabase, pcpu: int, capacity: int = 256) -> PcpuFirmware:
    return PcpuFirmware(RecordStore(pcpu, capacity, database.backend(pcpu)))


async def test_records_ids_and_counters_survive_reopening(tmp_path: Path) -> None:
    database = FirmwareDatabase(tmp_path)
    zero, one = firmware_on(database, 0, capacity=3), firmware_on(database, 1)
    await zero.inject(Injection(CMC, CORRECTED, 5))
    await zero.inject(Injection(CPE, CORRECTED, 1))
    await zero.clear(CMC, None)
    await zero.clear(CMC, 2)
    await one.inject(Injection(CMC, CORRECTED, 2))
    before = [(s.pending, s.counters, s.oldest_record_id) for s in zero.describe()]
    raw_before = zero.store.current(CMC)
    await zero.close()
    await one.close()
    database.close()
    assert sqlite_files(tmp_path) == [DATABASE_NAME]

    database = FirmwareDatabase(tmp_path)
    zero, one = firmware_on(database, 0, capacity=3), firmware_on(database, 1)
    assert [(s.pending, s.counters, s.oldest_record_id) for s in zero.describe()] == before
    assert zero.store.current(CMC) == raw_before
    assert [r.record_id for r in zero.store.pending_records(CMC)] == [3]
    assert zero.store.pending_records(CMC)[0].overflow  # the flag is durable too
    assert zero.store.next_record_id == 5 and one.store.next_record_id == 3
    again = await zero.clear(CMC, 2)
    assert again.already_cleared
    outcome = await zero.inject(Injection(CMC, CORRECTED, 1))
    assert outcome.first_record_id == 5  # the id counter continues
    assert zero.store.durable
    await zero.close()
    await one.close()
    database.close()


async def test_one_injection_is_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = FirmwareDatabase(tmp_path)
    commits: list[StoreChange] = []
    original = database.commit_now

    def counting(change: StoreChange) -> None:
        commits.append(change)
        original(change)

    monkeypatch.setattr(database, "commit_now", counting)
    firmware = firmware_on(database, 4, capacity=10_000)
    outcome = await firmware.inject(Injection(CMC, CORRECTED, 20_000))
    assert (outcome.stored, outcome.overflowed) == (10_000, 10_000)
    assert len(commits) == 1 and len(commits[0].inserted) == 10_000
    await firmware.close()
    database.close()


async def test_a_failed_commit_changes_nothing(tmp_path: Path) -> None:
    database = FirmwareDatabase(tmp_path)
    firmware = firmware_on(database, 0)
    await firmware.inject(Injection(CMC, CORRECTED, 1))
    # Another writer's record id 2 makes the next insert fail (primary key).
    with sqlite3.connect(database.path) as other:
        other.execute(
            "INSERT INTO pending_records VALUES (0, 2, ?, ?, 0, 0, 0, x'00')", (CMC, CORRECTED)
        )
    with pytest.raises(sqlite3.IntegrityError):
        await firmware.inject(Injection(CMC, CORRECTED, 1))
    state = firmware.store.state(CMC)
    assert (state.pending, state.counters.created, firmware.store.next_record_id) == (1, 1, 2)
    await firmware.close()
    database.close()


def test_a_database_from_another_schema_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DATABASE_NAME) as conn:
        conn.execute("CREATE TABLE schema_info (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_info VALUES (99)")
    with pytest.raises(StateDirError, match="schema version 99"):
        FirmwareDatabase(tmp_path)


async def test_host_restores_every_pcpu_from_one_file(tmp_path: Path) -> None:
    async with PcpuHost([0, 1, 2], state_dir=tmp_path) as host:
        for pcpu, address in host.addresses.items():
            async with open_channel(address) as channel:
                stub = sal_grpc.SalServiceStub(channel)
                await stub.InjectError(sal.InjectErrorRequest(type=CMC, count=pcpu + 1))
    async with PcpuHost([0, 1, 2], state_dir=tmp_path) as host:
        for pcpu, address in host.addresses.items():
            async with open_channel(address) as channel:
                stub = sal_grpc.SalServiceStub(channel)
                reply = await stub.DescribePcpu(sal.DescribePcpuRequest())
                assert reply.durable and reply.next_record_id == pcpu + 2
                assert reply.types[2].pending == pcpu + 1
    assert sqlite_files(tmp_path) == [DATABASE_NAME]


# --- identity ---------------------------------------------------------------------


async def test_token_book_guards_inject_read_clear_and_mask() -> None:
    book = TokenBook.generate()
    server, port = create_server("127.0.0.1:0", 2, token_book=book)
    await server.start()
    channel = open_channel(f"127.0.0.1:{port}")
    stub = sal_grpc.SalServiceStub(channel)
    operator = call_metadata(book.token_for(OPERATOR))
    xen = call_metadata(book.token_for(XEN))
    stranger = call_metadata("not-a-known-token")
    try:
        guarded = [
            ("InjectError", sal.InjectErrorRequest(type=CMC), operator, xen),
            ("GetStateInfo", sal.GetStateInfoRequest(type=CMC), xen, operator),
            ("ClearStateInfo", sal.ClearStateInfoRequest(type=CMC), xen, operator),
            ("SetInterruptMask", sal.SetInterruptMaskRequest(type=CMC), xen, operator),
        ]
        for method, request, allowed, wrong in guarded:
            call = getattr(stub, method)
            for metadata, code, reason in (
                ((), grpc.StatusCode.UNAUTHENTICATED, "MISSING_CREDENTIALS"),
                (stranger, grpc.StatusCode.UNAUTHENTICATED, "INVALID_TOKEN"),
                (wrong, grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_NOT_ALLOWED"),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await call(request, metadata=metadata)
                assert raised.value.code() == code, method
                info = error_info_of(raised.value)
                assert info is not None and info.reason == reason
            await call(request, metadata=allowed)
        # Open to anyone: the size, the description, the interrupt line.
        await stub.GetStateInfoSize(sal.GetStateInfoSizeRequest(type=CMC))
        reply = await stub.DescribePcpu(sal.DescribePcpuRequest())
        cmc = reply.types[2]
        assert (cmc.created, cmc.cleared, cmc.masked) == (1, 1, False)  # only allowed calls acted
    finally:
        await channel.close()
        await server.stop(None)


# --- the interrupt line on its own ------------------------------------------------


async def test_a_lagging_subscriber_is_ended_not_silently_short_changed() -> None:
    line = InterruptLine(pcpu=0, max_backlog=2)
    slow, fast = line.subscribe(), line.subscribe()
    fast_interrupts = aiter(fast)
    line.raise_interrupts(CMC, [1, 2], wall_ns=0)
    received = [(await anext(fast_interrupts)).record_id for _ in range(2)]
    line.raise_interrupts(CMC, [3], wall_ns=0)
    assert received == [1, 2] and line.subscribers == 1  # slow was ended at once
    with pytest.raises(SubscriptionLagged):
        async for _ in slow:
            pass
    assert (await anext(fast_interrupts)).record_id == 3
    line.close()
    assert [i async for i in fast_interrupts] == [] and line.subscribers == 0


@pytest.mark.parametrize("durable", [False, True])
async def test_a_cancelled_clear_is_reported_exactly_when_it_happened(
    tmp_path: Path, durable: bool
) -> None:
    """A CLEAR whose caller is cancelled (an RPC gone) either clears and reports it, or
    neither: in memory because nothing suspends between the two, with a state dir
    because the pair is shielded."""
    database = FirmwareDatabase(tmp_path) if durable else None
    store = RecordStore(0, 8, database.backend(0) if database else None)
    events = EventLog("pcpu")
    cleared: list[int] = []
    reported = asyncio.Event()

    def on_event(event: dict[str, object]) -> None:
        if event["kind"] == "record_cleared":
            cleared.append(int(str(event["record_id"])))
            reported.set()

    events.subscribe(on_event)
    firmware = PcpuFirmware(store, events=events)
    await firmware.inject(Injection(CMC, CORRECTED, 3))

    never_ran = asyncio.create_task(firmware.clear(CMC, 1))
    never_ran.cancel()
    started = asyncio.create_task(firmware.clear(CMC, 2))
    await asyncio.sleep(0)  # clear 2 has started (and, in memory, finished)
    started.cancel()
    await asyncio.gather(never_ran, started, return_exceptions=True)
    await asyncio.wait_for(reported.wait(), 10)  # the shielded clear ends after its caller

    assert never_ran.cancelled()
    assert cleared == [2]
    assert [r.record_id for r in store.pending_records(CMC)] == [1, 3]
    await firmware.close()
    if database:
        database.close()
