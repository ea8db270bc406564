"""The workload's driver against real pCPU servers: it sends the plan on time, retries an
unreachable pCPU and counts refusals. The plan itself is tested in test_workload_plan.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from flow_harness import EventWatch

from xenmca.pcpu.server import PcpuHost
from xenmca.rpc.clock import FakeClock
from xenmca.rpc.events import EventLog
from xenmca.rpc.identity import OPERATOR, TokenBook, call_metadata
from xenmca.testbed.run.workload import WorkloadDriver
from xenmca.testbed.run.workload_plan import PlannedInjection, plan_injections, planned_records
from xenmca.testbed.scenario.loader import parse_scenario_text
from xenmca.vocab import TYPES_BY_NAME


@dataclasses.dataclass
class Bed:
    host: PcpuHost
    tokens: TokenBook
    clock: FakeClock
    events: EventLog
    watch: EventWatch

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return call_metadata(self.tokens.token_for(OPERATOR))

    def created(self, pcpu: int, record_type: str) -> int:
        store = self.host.servers[pcpu].firmware.store
        return store.state(TYPES_BY_NAME[record_type]).counters.created

    async def paced_done(self) -> None:
        await asyncio.gather(*(s.firmware.wait_paced() for s in self.host.servers.values()))


@pytest.fixture
async def bed() -> AsyncIterator[Bed]:
    tokens = TokenBook.generate()
    host = PcpuHost(range(4), token_book=tokens, capacity=10_000)
    await host.start()
    events = EventLog("workload")
    watch = EventWatch()
    events.subscribe(watch)
    try:
        yield Bed(host, tokens, FakeClock(), events, watch)
    finally:
        await host.stop()


def dead_address() -> str:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


async def test_advancing_the_clock_sends_the_due_injections(bed: Bed) -> None:
    plan = [
        PlannedInjection(0.0, 0, "cmc", "corrected"),
        PlannedInjection(0.5, 1, "cmc", "recoverable"),
        PlannedInjection(1.0, 2, "cpe", "corrected"),
        PlannedInjection(1.0, 0, "mca", "fatal", 3),
        PlannedInjection(2.0, 3, "cmc", "corrected", 40, 10_000.0),  # paced by the host
    ]
    driver = WorkloadDriver(plan, bed.host.addresses, bed.metadata, bed.events, bed.clock)
    progress: list[float] = []
    task = asyncio.create_task(driver.run(progress.append))
    sent = lambda: len(bed.watch.matching("workload_injected"))  # noqa: E731

    await bed.watch.wait_for("workload_injected", 1)
    await driver.wait_idle()
    assert sent() == 1 and bed.created(0, "cmc") == 1 and bed.created(1, "cmc") == 0

    await bed.clock.advance(0.4)
    await driver.wait_idle()
    assert sent() == 1

    await bed.clock.advance(0.1)
    await driver.wait_idle()
    assert sent() == 2 and bed.created(1, "cmc") == 1

    await bed.clock.advance(0.5)
    await driver.wait_idle()
    assert sent() == 4 and bed.created(2, "cpe") == 1 and bed.created(0, "mca") == 3
    assert not task.done()

    await bed.clock.advance(1.0)
    summary = await task
    await bed.paced_done()
    assert bed.created(3, "cmc") == 40
    assert (summary.planned_calls, summary.sent_calls, summary.failed_calls) == (5, 5, 0)
    assert (summary.requested_records, summary.accepted_records, summary.failed_records) == (
        46,
        46,
        0,
    )
    assert {k: (v.requested, v.accepted) for k, v in summary.per_type.items()} == {
        "cmc": (42, 42),
        "cpe": (1, 1),
        "mca": (3, 3),
    }
    assert progress == [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]
    event = bed.watch.matching("workload_injected", pcpu=0, type="MCA")[0]
    assert (event["count"], event["rate"], event["severity"]) == (3, 0.0, "fatal")
    assert event["last_record_id"] - event["first_record_id"] == 2
    storm = bed.watch.matching("workload_injected", pcpu=3)[0]
    assert (storm["count"], storm["rate"], storm["source"]) == (40, 10_000.0, "")


async def test_a_scenario_plan_lands_on_the_pcpus_as_planned(bed: Bed) -> None:
    text = """
name: small
seed: 9
pcpus: 4
duration_s: 6
workload:
  streams:
    - {type: cmc, rate: 3, pcpus: all, severity: {corrected: 1, recoverable: 1}}
    - {type: cpe, rate: 1, pcpus: "0-1"}
    - {type: init, rate: 0.5, pcpus: [3], start_s: 1, duration_s: 4}
  storms:
    - {type: cmc, pcpus: [2], rate: 5000, start_s: 2, duration_s: 0.02}
"""
    plan = plan_injections(parse_scenario_text(text))
    driver = WorkloadDriver(plan, bed.host.addresses, bed.metadata, bed.events, bed.clock)
    task = asyncio.create_task(driver.run())
    elapsed = 0.0
    while elapsed < 6.0:
        await driver.wait_idle()
        due = sum(1 for i in plan if i.t_s <= elapsed + 1e-9)
        assert len(bed.watch.matching("workload_injected")) == due
        await bed.clock.advance(0.25)
        elapsed += 0.25
    summary = await task
    await bed.paced_done()
    expected: Counter[tuple[int, str]] = Counter()
    for injection in plan:
        expected[(injection.pcpu, injection.type)] += injection.count
    for pcpu in range(4):
        for record_type in TYPES_BY_NAME:
            assert bed.created(pcpu, record_type) == expected[(pcpu, record_type)]
    assert summary.sent_calls == len(plan) and summary.failed_calls == 0
    assert summary.accepted_records == planned_records(plan)["total"]
    assert summary.max_lag_s < 0.25


async def test_a_burst_lands_at_its_time_all_at_once(bed: Bed) -> None:
    text = """
name: burst
seed: 3
pcpus: 4
duration_s: 5
workload:
  bursts: [{type: cmc, pcpus: [1, 3], count: 25, at_s: 1, severity: recoverable}]
"""
    plan = plan_injections(parse_scenario_text(text))
    driver = WorkloadDriver(plan, bed.host.addresses, bed.metadata, bed.events, bed.clock)
    task = asyncio.create_task(driver.run())
    await driver.wait_idle()
    await bed.clock.advance(0.9)
    await driver.wait_idle()
    assert [bed.created(p, "cmc") for p in range(4)] == [0, 0, 0, 0]
    await bed.clock.advance(0.1)
    summary = await task
    assert [bed.created(p, "cmc") for p in range(4)] == [0, 25, 0, 25]
    assert (summary.sent_calls, summary.accepted_records) == (2, 50)
    injected = bed.watch.matching("workload_injected")
    assert sorted(e["pcpu"] for e in injected) == [1, 3]
    for event in injected:
        assert (event["count"], event["rate"], event["severity"]) == (25, 0.0, "recoverable")
        assert event["source"] == "bursts[0]" and event["planned_t_s"] == 1.0
        # One store change: the burst's records have consecutive ids.
        assert event["last_record_id"] - event["first_record_id"] == 24


async def test_an_unreachable_pcpu_is_retried_then_counted_not_raised(bed: Bed) -> None:
    addresses = {0: bed.host.addresses[0], 1: dead_address()}  # pCPU 2: no address at all
    plan = [
        PlannedInjection(0.0, 0, "cmc", "corrected"),
        PlannedInjection(0.0, 1, "cmc", "corrected"),
        PlannedInjection(1.0, 1, "cpe", "corrected", 5),
        PlannedInjection(1.0, 2, "cmc", "corrected", 7, 100.0),
        PlannedInjection(2.0, 0, "cmc", "corrected"),
    ]
    driver = WorkloadDriver(
        plan, addresses, bed.metadata, bed.events, bed.clock, attempts=3, retry_backoff_s=0.1
    )
    task = asyncio.create_task(driver.run())
    for _ in range(40):  # 4 s: past the last injection and every backoff
        await driver.wait_idle()
        await bed.clock.advance(0.1)
    summary = await task
    assert (summary.sent_calls, summary.failed_calls) == (2, 3)
    assert (summary.requested_records, summary.accepted_records, summary.failed_records) == (
        15,
        2,
        13,
    )
    assert summary.retries == 4  # two calls to pCPU 1, each tried 3 times
    assert summary.per_type["cpe"].failed == 5 and summary.per_type["cmc"].failed == 8
    assert bed.created(0, "cmc") == 2
    failed = bed.watch.matching("workload_failed")
    assert sorted((e["pcpu"], e["type"], e["code"], e["attempts"]) for e in failed) == [
        (1, "CMC", "UNAVAILABLE", 3),
        (1, "CPE", "UNAVAILABLE", 3),
        (2, "CMC", "NO_ADDRESS", 0),
    ]
    assert len(bed.watch.matching("workload_retry", pcpu=1)) == 4


async def test_an_unreachable_pcpu_is_tried_long_enough_to_outlast_a_restart(bed: Bed) -> None:
    """With the default tries an injection waits 9.75 s for its pCPU: a killed host restarts
    after restart_after_s (1 s by default) and may take seconds more to serve on a busy
    machine. Four tries waited 1.75 s, barely more than a restart takes on a quiet machine."""
    plan = [PlannedInjection(0.0, 1, "cmc", "corrected")]
    driver = WorkloadDriver(plan, {1: dead_address()}, bed.metadata, bed.events, bed.clock)
    task = asyncio.create_task(driver.run())
    failed_at = None
    for step in range(1, 241):  # 12 s
        await driver.wait_idle()
        if failed_at is None and driver.summary.failed_calls:
            failed_at = (step - 1) * 0.05
        await bed.clock.advance(0.05)
    summary = await task
    assert (summary.sent_calls, summary.failed_calls, summary.retries) == (0, 1, 11)
    # 9.75 s of backoff, each sleep ending on one of the 0.05 s steps
    assert failed_at is not None and 9.75 <= failed_at <= 9.75 + 11 * 0.05
    assert bed.watch.matching("workload_failed")[0]["attempts"] == 12


async def test_a_refused_call_is_counted_without_retrying(bed: Bed) -> None:
    """A wrong token is PERMISSION_DENIED/UNAUTHENTICATED: not retried, counted as failed."""
    plan = [PlannedInjection(0.0, 0, "cmc", "corrected", 2)]
    driver = WorkloadDriver(plan, bed.host.addresses, call_metadata("wrong-token"), bed.events)
    summary = await driver.run()
    assert (summary.sent_calls, summary.failed_calls, summary.retries) == (0, 1, 0)
    assert bed.created(0, "cmc") == 0
    assert bed.watch.matching("workload_failed")[0]["code"] in (
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
    )


async def test_an_empty_plan_finishes_at_once() -> None:
    driver = WorkloadDriver([], {}, clock=FakeClock())
    summary = await driver.run()
    assert summary.planned_calls == 0 and summary.sent_calls == 0 and driver.idle
