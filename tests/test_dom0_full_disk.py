"""dom0 with a full disk: retries on one capped exponential backoff, the state reported once.

The log is full through SQLite's own error path: ``LogStore.set_page_limit``
caps the database at the pages it has and filler rows use them up, so the next
commit fails with SQLITE_FULL ("database or disk is full") as on a full
filesystem; lifting the cap is space coming back. The fake coordinator of
dom0_logger_helpers answers dom0's calls and stamps each GET with the FakeClock's
time. The clock moves only when dom0 has nothing left to do at the current
instant, so the tests compare the instants of GETs and commits with the
backoff schedule itself, never with wall time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import sqlite3
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from dom0_full_disk_helpers import (
    FILLER_PCPU,
    FULL,
    delays,
    fill,
    free,
)
from dom0_logger_helpers import (
    CMC,
    CPE,
    Changes,
    FakeXen,
    Harness,
    make_record,
)
from dom0_logger_helpers import harness as harness
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from xenmca.dom0.log_health import LogHealth
from xenmca.dom0.logger import Dom0Logger
from xenmca.dom0.metrics import Dom0Metrics
from xenmca.dom0.pacing import PollSettings
from xenmca.dom0.salinfo import SalinfoPolicy
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.record.v1 import record_pb2
from xenmca.rpc.clock import FakeClock
from xenmca.rpc.events import EventLog

POLL = 0.125  # a fixed CPE poll interval (min = max); binary fractions keep the sums exact
RECOVERABLE = record_pb2.SEVERITY_RECOVERABLE


def retry_schedule(first: float, count: int) -> list[float]:
    """The instants of count attempts, the first at first, each after the previous delay."""
    instants = [first]
    for delay in itertools.islice(delays(), count - 1):
        instants.append(instants[-1] + delay)
    return instants


class StepClock:
    """A fake clock whose sleepers' deadlines are fixed when sleep() is called.

    (FakeClock fixes them when the sleeping coroutine first runs, which may be
    after the test moved the clock on.) Tells ``notify`` of each new sleeper;
    time moves only in advance_to().
    """

    def __init__(self, notify: Callable[[], None]) -> None:
        self._now = 0.0
        self._notify = notify
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> Coroutine[Any, Any, None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self._now + max(0.0, seconds)
        heapq.heappush(self._sleepers, (deadline, next(self._seq), future))
        self._notify()
        return self._wait(future)

    @staticmethod
    async def _wait(future: asyncio.Future[None]) -> None:
        await future

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, future in self._sleepers if not future.done())

    def next_deadline(self) -> float:
        return min(deadline for deadline, _, future in self._sleepers if not future.done())

    async def advance_to(self, instant: float) -> None:
        """Move time to instant, waking each sleeper due by then in deadline order."""
        assert instant >= self._now
        while self._sleepers and self._sleepers[0][0] <= instant:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not future.done():
                future.set_result(None)
                for _ in range(5):  # let the sleeper run on before the next one wakes
                    await asyncio.sleep(0)
        self._now = instant


class TimedXen(FakeXen):
    """The fake coordinator; every GET stamped with the clock's time, CLEAR without id allowed.

    Real SAL (and linux-salinfo) clears the current record without naming it:
    here that clears the record the last GET of the type returned.
    """

    def __init__(self, changes: Changes, db_path: Path, clock: StepClock, **kwargs: Any) -> None:
        super().__init__(changes, db_path, **kwargs)
        self.clock = clock
        self.get_times: list[float] = []

    def _get(self, record_type: int) -> hv_pb2.GetStateInfoResponse:
        self.get_times.append(self.clock.now())
        return super()._get(record_type)

    async def ClearStateInfo(self, request, context) -> hv_pb2.ClearStateInfoResponse:
        read = self.read_id[request.type]
        if not request.HasField("record_id") and read is not None:
            request = hv_pb2.ClearStateInfoRequest(type=request.type, record_id=read)
        return await super().ClearStateInfo(request, context)


def logged(h: Harness) -> list[tuple[int, int, str]]:
    return [row for row in h.db_rows() if row[0] != FILLER_PCPU]


def scrape(logger: Dom0Logger) -> dict[str, float]:
    text = generate_latest(Dom0Metrics(logger).registry).decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def dom0_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == level and r.name.startswith("xenmca.dom0")
    ]


async def start(h: Harness, fake: FakeXen, clock: StepClock, **kwargs: Any) -> Dom0Logger:
    logger = await h.logger(await h.serve(fake), clock=clock, **kwargs)
    await h.changes.until(lambda: fake.stream is not None)
    return logger


async def test_cpe_polls_back_off_while_the_log_is_full_and_recover_when_space_returns(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="xenmca.dom0")
    h = harness
    clock = StepClock(h.changes.notify)
    fake = TimedXen(h.changes, h.db_path, clock)
    polled = {CPE: PollSettings(min_interval=POLL, max_interval=POLL)}
    logger = await start(h, fake, clock, polled_types=polled)
    assert h.store is not None
    await fill(h.store)
    fake.add(*(make_record(p, 1, CPE) for p in range(3)))

    async def run_until(horizon: float) -> None:
        """Advance from one sleeper's wake-up to the next; only the poller sleeps."""
        while True:
            await h.changes.until(lambda: clock.sleepers == 1)
            if clock.next_deadline() > horizon:
                return
            await clock.advance_to(clock.next_deadline())

    # Before the fix this was a GET (and an ERROR line) every poll: 8 a second here.
    await run_until(200.0)
    failing = retry_schedule(POLL, 9)
    assert failing == [0.125, 1.125, 3.125, 7.125, 15.125, 31.125, 63.125, 123.125, 183.125]
    assert fake.get_times == failing
    failed = h.kinds("commit_failed")
    assert [e["attempt"] for e in failed] == list(range(1, 10))
    assert [e["retry_in"] for e in failed] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert {e["error"] for e in failed} == {FULL}
    [unwritable] = h.kinds("log_unwritable")
    assert (unwritable["error"], unwritable["type"], unwritable["retry_in"]) == (FULL, "CPE", 1)
    assert fake.cleared() == []
    assert len(fake.pending[CPE]) == 3  # nothing lost: all still in "firmware"

    # Reported once: one ERROR line, the repeats at DEBUG; the gauge and the counter.
    [error] = dom0_lines(caplog, logging.ERROR)
    assert "takes no commits" in error and FULL in error and "up to 60s" in error
    assert len([m for m in dom0_lines(caplog, logging.DEBUG) if "still takes no" in m]) == 8
    metrics = scrape(logger)
    assert metrics["xenmca_dom0_log_writable"] == 0
    assert metrics["xenmca_dom0_commit_errors_total"] == 9
    assert not logger.log_health.writable and logger.log_health.failed_attempts == 9

    # Space comes back: the next attempt on the schedule logs everything and CLEARs it.
    await free(h.store)
    recovered_at = failing[-1] + 60
    await run_until(recovered_at)
    await h.changes.until(lambda: len(fake.cleared()) == 3)
    assert fake.get_times[len(failing)] == recovered_at
    assert logged(h) == [(0, 1, "CPE"), (1, 1, "CPE"), (2, 1, "CPE")]
    [writable] = h.kinds("log_writable")
    assert writable["seconds"] == recovered_at - POLL and writable["failed_attempts"] == 9
    [info] = [m for m in dom0_lines(caplog, logging.INFO) if "again" in m]
    assert "after 243.0s and 9 failed attempts" in info
    assert scrape(logger)["xenmca_dom0_log_writable"] == 1
    assert logger.log_health.writable and logger.log_health.failed_attempts == 0

    # The backoff starts over: a disk that fills again is retried after 1 s, not 60 s.
    await run_until(recovered_at + 1)
    polls_since = [t for t in fake.get_times if t > recovered_at]
    assert polls_since == [recovered_at + POLL * n for n in range(1, 9)]  # polling as usual
    await fill(h.store)
    fake.add(make_record(0, 2, CPE))
    await run_until(recovered_at + 3)
    again = [(e["attempt"], e["retry_in"]) for e in h.kinds("commit_failed")[9:]]
    assert again == [(1, 1), (2, 2)]
    assert fake.get_times[-2:] == [recovered_at + 9 * POLL, recovered_at + 9 * POLL + 1]
    assert len(h.kinds("log_unwritable")) == 2
    assert len(dom0_lines(caplog, logging.ERROR)) == 2


def interrupt_passes(first: float, watchdog: float, count: int) -> list[float]:
    """When vCPU0's passes run: the delay after the last one, or the next re-injection after it.

    A pass needs an interrupt: when the backoff's delay is over before the
    coordinator's watchdog injects again, the pass waits for that injection.
    """
    passes = [first]
    for delay in itertools.islice(delays(), count - 1):
        last = passes[-1]
        next_injection = (last // watchdog + 1) * watchdog
        passes.append(max(last + delay, next_injection))
    return passes


async def test_reinjected_interrupts_wait_for_the_backoff_and_do_not_pile_up(
    harness: Harness,
) -> None:
    h = harness
    clock = StepClock(h.changes.notify)
    fake = TimedXen(h.changes, h.db_path, clock)
    logger = await start(h, fake, clock)
    assert h.store is not None
    await fill(h.store)

    watchdog = 5.0  # the coordinator injects again an entry without progress (reinject_after)
    passes = interrupt_passes(0.0, watchdog, 9)
    assert passes == [0, 5, 10, 15, 23, 39, 71, 131, 191]
    failing, recovery = passes[:-1], passes[-1]

    async def drive(instants: list[float], injections: list[float]) -> None:
        """Advance instant by instant; at each, inject or wait for the pass due then."""
        for instant in instants:
            await clock.advance_to(instant)
            if instant in injections:
                received = len(h.kinds("interrupt_received")) + 1
                fake.inject(CMC, reinjected=True)
                await h.changes.until(partial(seen, "interrupt_received", received))
            if instant in failing:
                done = failing.index(instant) + 1
                await h.changes.until(partial(seen, "commit_failed", done))

    def seen(kind: str, count: int) -> bool:
        return len(h.kinds(kind)) >= count

    fake.add(make_record(0, 1))  # injected at once, at t = 0
    await h.changes.until(lambda: len(h.kinds("commit_failed")) == 1)
    injections = [watchdog * n for n in range(1, int(failing[-1] // watchdog) + 1)]
    await drive(sorted({*failing[1:], *injections}), injections)
    assert fake.get_times == failing
    assert len(h.kinds("interrupt_received")) == 1 + len(injections)  # 27 in, 8 passes
    assert [e["retry_in"] for e in h.kinds("commit_failed")] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert fake.cleared() == [] and fake.pending[CMC] == [make_record(0, 1)]
    assert logger.counters.commit_errors == 8

    # Space returns; the pass due next logs and clears the record. Of the eleven
    # re-injections meanwhile, one is still queued: one more pass (GET answers -5).
    await free(h.store)
    later = [t for t in range(135, int(recovery), 5) if t > failing[-1]]
    await drive([*map(float, later), recovery], [*map(float, later)])
    await h.changes.until(lambda: len(fake.cleared()) == 1)
    await logger.stop()  # the worker handles what is queued before it ends
    assert fake.get_times == [*failing, recovery, recovery]
    assert fake.calls[-1] == ("get", CMC, -5)
    assert logged(h) == [(0, 1, "CMC")]
    [writable] = h.kinds("log_writable")
    assert (writable["seconds"], writable["failed_attempts"]) == (recovery, 8)


async def test_salinfo_daemon_writes_again_on_the_backoff_and_reads_nothing_meanwhile(
    harness: Harness,
) -> None:
    h = harness
    clock = StepClock(h.changes.notify)
    fake = TimedXen(h.changes, h.db_path, clock)
    decode = 0.5
    logger = await start(h, fake, clock, policy=SalinfoPolicy(decode_delay=decode))
    assert h.store is not None
    await fill(h.store)
    record = make_record(0, 1)
    record.severity = RECOVERABLE  # cleared by the daemon after its commit, not by mca.c
    fake.add(record)

    async def run_until(horizon: float) -> None:
        while True:  # only the daemon sleeps (its decode, then its turns to write again)
            await h.changes.until(lambda: clock.sleepers == 1)
            if clock.next_deadline() > horizon:
                return
            await clock.advance_to(clock.next_deadline())

    await run_until(100.0)
    commits = retry_schedule(decode, 7)
    assert commits == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 63.5]
    failed = h.kinds("commit_failed")
    assert [e["attempt"] for e in failed] == list(range(1, 8))
    assert fake.get_times == [0.0]  # the kernel's one read; the daemon holds the record
    assert len(h.kinds("log_unwritable")) == 1
    assert logger.counters.commit_errors == 7

    await free(h.store)
    assert clock.next_deadline() == commits[-1] + 60
    await clock.advance_to(commits[-1] + 60)
    await h.changes.until(lambda: fake.cleared() == [(0, 1)] and len(fake.get_times) == 2)
    assert logged(h) == [(0, 1, "CMC")]
    [writable] = h.kinds("log_writable")
    assert (writable["seconds"], writable["failed_attempts"]) == (123.0, 7)
    assert fake.get_times == [0.0, 123.5]  # after its CLEAR the daemon reads on: -5


async def test_one_attempt_at_a_time_and_a_pass_without_a_commit_hands_the_turn_on() -> None:
    clock = FakeClock(start=0.0)
    events = EventLog("dom0")
    health = LogHealth(clock, events)
    stopping = asyncio.Event()
    entered: list[tuple[str, float]] = []
    outcome: dict[str, asyncio.Future[str]] = {}

    async def attempt(name: str) -> None:
        async with health.attempt(stopping) as go:
            assert go
            entered.append((name, clock.now()))
            outcome[name] = asyncio.get_running_loop().create_future()
            result = await outcome[name]
            if result == "fail":
                health.commit_failed(sqlite3.OperationalError(FULL), "CMC")
            elif result == "ok":
                health.commit_succeeded()

    async def settle() -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    health.commit_failed(sqlite3.OperationalError(FULL), "CPE")  # at 0: next at 1
    tasks = [asyncio.create_task(attempt(name)) for name in ("a", "b", "c")]
    await settle()
    assert entered == []
    await clock.advance(1.0)
    await settle()
    assert entered == [("a", 1.0)]  # b and c wait for a's outcome
    outcome["a"].set_result("nothing")  # a's GET found nothing: no commit, the turn moves on
    await settle()
    assert entered == [("a", 1.0), ("b", 1.0)]
    outcome["b"].set_result("fail")  # next attempt 2 s later
    await settle()
    await clock.advance(1.5)
    await settle()
    assert entered[-1] == ("b", 1.0)
    await clock.advance(0.5)
    await settle()
    assert entered[-1] == ("c", 3.0)
    outcome["c"].set_result("ok")
    await asyncio.gather(*tasks)
    assert health.writable and health.retry_at == 0.0
    async with health.attempt(stopping) as go:  # writable: no waiting at all
        assert go
