"""dom0 policy linux-salinfo against a real coordinator and pCPU host, in process on port 0.

What a Linux ia64 dom0 did (mca.c, salinfo.c) and what it costs: corrected
records cleared in firmware before they are logged, a double buffer that a
third read overwrites, records lost with dom0's memory, and re-reads logged as
new records. The daemon's decode delay runs on a FakeClock wherever a test
needs the daemon held between copy and commit; everything else waits on events.
The saved slots on their own, the dom0 command and the policies by name are in
test_dom0_salinfo_parts.py.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from dom0_salinfo_helpers import (
    CORRECTED,
    RECOVERABLE,
    inject,
    watch_firmware,
)
from flow_harness import CMC, CPE, FAST_RETRY, FlowBed, flow_bed

from xenmca.dom0.log_store import LogStore
from xenmca.dom0.logger import Dom0Logger
from xenmca.dom0.policy import Dom0Policy
from xenmca.dom0.salinfo import SalinfoPolicy
from xenmca.rpc.clock import Clock, FakeClock
from xenmca.rpc.events import Event, EventLog
from xenmca.rpc.fault_rules import FaultAction, FaultSpec
from xenmca.rpc.identity import DOM0
from xenmca.testbed.check import checkers
from xenmca.testbed.run.data import LoggedRecord, RunData

DECODE = 1.0  # seconds of FakeClock per decoded record
SEED = 20061110


@asynccontextmanager
async def dom0(
    bed: FlowBed,
    tmp_path: Path,
    policy: Dom0Policy | str = "linux-salinfo",
    clock: Clock | None = None,
) -> AsyncIterator[tuple[Dom0Logger, LogStore]]:
    store = await LogStore.open(tmp_path / "dom0.sqlite")
    events = EventLog("dom0")
    events.subscribe(bed.watch)
    logger = Dom0Logger(
        bed.xen_address,
        store,
        token=bed.tokens.token_for(DOM0),
        events=events,
        clock=clock,
        polled_types={},
        rng=random.Random(SEED),
        policy=policy,
    )
    await logger.start()
    try:
        await bed.watch.wait_for("dom0_attached", component="dom0")
        yield logger, store
    finally:
        await logger.stop(grace=2.0)
        await store.close()


def position(bed: FlowBed, component: str, kind: str, **fields: Any) -> int:
    """Index in the watch of the first event of component with kind and fields."""
    wanted = {"component": component, "kind": kind, **fields}
    for index, event in enumerate(bed.watch.events):
        if all(event.get(k) == v for k, v in wanted.items()):
            return index
    raise AssertionError(f"no {component} {kind} {fields}")


def dom0_events(bed: FlowBed, kind: str, **fields: Any) -> list[Event]:
    return bed.watch.matching(kind, component="dom0", **fields)


def firmware_cleared(bed: FlowBed) -> list[tuple[int, int]]:
    cleared = bed.watch.matching("record_cleared", component="pcpu")
    return [(e["pcpu"], e["record_id"]) for e in cleared]


def committed(bed: FlowBed) -> list[tuple[int, int]]:
    return [(e["pcpu"], e["record_id"]) for e in dom0_events(bed, "record_committed")]


class DecodeClock(FakeClock):
    """A FakeClock that says when someone starts sleeping on it (the daemon's decode)."""

    def __init__(self) -> None:
        super().__init__()
        self.slept = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.slept.set()
        await super().sleep(seconds)

    async def until_sleeping(self) -> None:
        async with asyncio.timeout(10):
            while not self.sleepers:
                self.slept.clear()
                await self.slept.wait()


async def let_the_daemon_decode(clock: DecodeClock, bed: FlowBed, commits: int) -> None:
    """Advance the clock one decode at a time until dom0 made `commits` commits in all."""
    while len(dom0_events(bed, "record_committed")) < commits:
        await clock.until_sleeping()  # the daemon is in its decode delay
        done = len(dom0_events(bed, "record_committed"))
        await clock.advance(DECODE)
        await bed.watch.wait_for("record_committed", component="dom0", count=done + 1)


async def test_corrected_is_cleared_in_firmware_before_commit_recoverable_after(
    tmp_path: Path,
) -> None:
    async with flow_bed(pcpus=2, vcpu0_pcpu=0) as bed, dom0(bed, tmp_path) as (logger, store):
        watch_firmware(bed)
        assert dom0_events(bed, "dom0_attached")[0]["policy"] == "linux-salinfo"

        await inject(bed, 1, CORRECTED)
        await bed.watch.wait_for("record_committed", component="dom0", pcpu=1, record_id=1)
        cleared = position(bed, "pcpu", "record_cleared", pcpu=1, record_id=1)
        assert cleared < position(bed, "dom0", "record_committed", pcpu=1, record_id=1)
        # mca.c cleared it right after its GET; the CLEAR named no record (real SAL has none).
        (clear,) = dom0_events(bed, "record_clear_requested", record_id=1)
        assert clear["caller"] == "mca.c"
        assert position(bed, "dom0", "salinfo_saved", pcpu=1, record_id=1) < cleared

        await inject(bed, 1, RECOVERABLE)
        await bed.watch.wait_for("record_cleared", component="pcpu", pcpu=1, record_id=2)
        cleared = position(bed, "pcpu", "record_cleared", pcpu=1, record_id=2)
        assert position(bed, "dom0", "record_committed", pcpu=1, record_id=2) < cleared
        (clear,) = dom0_events(bed, "record_clear_requested", record_id=2)
        assert clear["caller"] == "salinfo.c"  # salinfo_log_clear, after the daemon wrote it

        rows = await store.list_records()
        assert [(r.pcpu, r.record_id) for r in rows] == [(1, 1), (1, 2)]
        assert (await bed.pending(1)).pending == 0
        assert logger.counters.records_logged == 2 and logger.counters.salinfo_discarded == 0


async def test_the_xenmca_policy_commits_before_it_clears(tmp_path: Path) -> None:
    async with flow_bed(pcpus=2, vcpu0_pcpu=0) as bed, dom0(bed, tmp_path, "xenmca"):
        watch_firmware(bed)
        assert dom0_events(bed, "dom0_attached")[0]["policy"] == "xenmca"
        await inject(bed, 1, CORRECTED)
        await bed.watch.wait_for("record_cleared", component="pcpu", pcpu=1, record_id=1)
        committed_at = position(bed, "dom0", "record_committed", pcpu=1, record_id=1)
        assert committed_at < position(bed, "pcpu", "record_cleared", pcpu=1, record_id=1)
        assert not dom0_events(bed, "salinfo_saved")


async def test_a_buffer_reused_before_the_daemon_copies_it_loses_its_record(
    tmp_path: Path,
) -> None:
    clock = DecodeClock()
    policy = SalinfoPolicy(decode_delay=DECODE)
    async with (
        flow_bed(pcpus=2, vcpu0_pcpu=0) as bed,
        dom0(bed, tmp_path, policy, clock) as (
            logger,
            store,
        ),
    ):
        watch_firmware(bed)
        await inject(bed, 0, CORRECTED, count=4)
        # The daemon copied record 1 at once and decodes it; meanwhile mca.c reads 2, 3
        # and 4 into the two buffers (0, 1, 0, 1), clearing each in firmware.
        await bed.watch.wait_for("record_cleared", component="pcpu", count=4)
        await bed.watch.wait_for("salinfo_saved", component="dom0", count=4)
        saved = dom0_events(bed, "salinfo_saved")
        assert [(e["record_id"], e["buffer"]) for e in saved] == [(1, 0), (2, 1), (3, 0), (4, 1)]
        assert committed(bed) == []
        assert (await bed.pending(0)).pending == 0

        await let_the_daemon_decode(clock, bed, commits=3)
        # Record 4 went into record 2's buffer before the daemon copied record 2:
        # "saved record changed by mca.c since interrupt, discard it".
        assert committed(bed) == [(0, 1), (0, 3), (0, 4)]
        (discarded,) = dom0_events(bed, "salinfo_discarded")
        assert (discarded["pcpu"], discarded["type"], discarded["record_id"]) == (0, "CMC", 2)
        assert discarded["reason"] == "changed"
        assert [(r.pcpu, r.record_id) for r in await store.list_records()] == [
            (0, 1),
            (0, 3),
            (0, 4),
        ]
        assert firmware_cleared(bed) == [(0, 1), (0, 2), (0, 3), (0, 4)]
        assert logger.counters.salinfo_discarded == 1


async def test_a_crash_between_clear_and_commit_loses_the_records(tmp_path: Path) -> None:
    clock = DecodeClock()
    policy = SalinfoPolicy(decode_delay=DECODE)
    async with flow_bed(pcpus=2, vcpu0_pcpu=0) as bed:
        watch_firmware(bed)
        async with dom0(bed, tmp_path, policy, clock) as (logger, store):
            await inject(bed, 1, CORRECTED, count=2)
            await bed.watch.wait_for("record_cleared", component="pcpu", count=2)
            await bed.watch.wait_for("salinfo_saved", component="dom0", count=2)
            assert len(policy.memory[CMC].saved.slots) == 2  # only in volatile memory now
            await logger.stop(grace=0)  # a crash: the daemon dies in its decode delay

            assert committed(bed) == []
            assert await store.list_records() == []
            state = await bed.pending(1)
            assert (state.pending, state.cleared) == (0, 2)
            lost = state.cleared + state.pending - len(await store.list_records())
            assert lost == 2


async def test_a_redelivered_record_is_committed_as_new_twice(tmp_path: Path) -> None:
    clock = DecodeClock()
    policy = SalinfoPolicy(decode_delay=DECODE)
    # vCPU0 on pCPU 1: pCPU 0's calls are IPIs, which the fault rule below can fail
    # (a local SAL call has no IPI to fail).
    async with (
        flow_bed(pcpus=2, vcpu0_pcpu=1) as bed,
        dom0(bed, tmp_path, policy, clock) as (
            logger,
            store,
        ),
    ):
        watch_firmware(bed)
        # Every attempt of the coordinator's first CLEAR fails: dom0 gets -3 and the
        # coordinator delivers the record again; mca.c reads and saves it a second time.
        bed.host.faults.add(
            FaultSpec(
                method="SalService.ClearStateInfo",
                action=FaultAction.FAIL,
                pcpu=0,
                count=FAST_RETRY.max_attempts,
            )
        )
        await inject(bed, 0, CORRECTED)
        await bed.watch.wait_for("record_cleared", component="pcpu", pcpu=0, record_id=1)
        await bed.watch.wait_for("salinfo_saved", component="dom0", count=2)
        await bed.watch.wait_for("record_cleared", component="dom0", count=2)
        assert [e["sal_status"] for e in dom0_events(bed, "record_cleared")] == [-3, 0]

        await let_the_daemon_decode(clock, bed, commits=2)
        commits = dom0_events(bed, "record_committed")
        assert [(e["pcpu"], e["record_id"], e["duplicate"]) for e in commits] == [
            (0, 1, False),
            (0, 1, False),
        ]
        assert [e["already_in_log"] for e in commits] == [False, True]
        rows = await store.list_records()
        assert [(r.pcpu, r.record_id) for r in rows] == [(0, 1)]
        # The testbed's duplicates checker counts the second "new" commit.
        logged = [
            LoggedRecord(
                pcpu=r.pcpu,
                record_id=r.record_id,
                type=r.type,
                severity=r.severity,
                created_monotonic_ns=r.created_monotonic_ns,
                logged_monotonic_ns=r.logged_monotonic_ns,
            )
            for r in rows
        ]
        data = cast(RunData, SimpleNamespace(log=logged, events=bed.watch.events))
        assert checkers.count_duplicates(data) == 1
        assert logger.counters.records_logged == 2 and logger.counters.duplicates_dropped == 0


async def test_a_cpe_poll_tick_reads_one_record_and_the_daemon_reads_the_rest(
    tmp_path: Path,
) -> None:
    async with flow_bed(pcpus=2, vcpu0_pcpu=0) as bed:
        policy = SalinfoPolicy(decode_delay=0)
        async with dom0(bed, tmp_path, policy) as (logger, store):
            await inject(bed, 1, CORRECTED, count=3, kind=CPE)
            await bed.watch.wait_for("entry_queued", component="xen", pcpu=1, type="CPE")
            # ia64_mca_cpe_int_caller: one handler run per tick; found is what it read.
            assert await logger.poll_once(CPE) == 1
            await bed.watch.wait_for("record_committed", component="dom0", count=3)
            reads = dom0_events(bed, "record_read")
            assert [(e["record_id"], e["caller"]) for e in reads] == [
                (1, "mca.c"),
                (2, "salinfo.c"),  # salinfo_log_read_cpu: no saved slot, straight from SAL
                (3, "salinfo.c"),
            ]
            assert (await bed.pending(1, CPE)).pending == 0
            assert len(await store.list_records()) == 3
