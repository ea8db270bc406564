"""The workload: a deterministic plan from the seed, and a driver that sends it on time."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import socket
import statistics
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from flow_harness import EventWatch
from storm_trips import storm_trips

from xenmca.pcpu.server import PcpuHost
from xenmca.rpc.clock import FakeClock
from xenmca.rpc.events import EventLog
from xenmca.rpc.identity import OPERATOR, TokenBook, call_metadata
from xenmca.testbed.run.workload import WorkloadDriver
from xenmca.testbed.run.workload_plan import PlannedInjection, plan_injections, planned_records
from xenmca.testbed.scenario.loader import builtin_names, load_builtin, parse_scenario_text
from xenmca.vocab import TYPES_BY_NAME

SCENARIO = """
name: w
seed: {seed}
pcpus: 4
duration_s: 20
workload:
  streams:
    - {{type: cmc, rate: 1.5, pcpus: all, severity: {{corrected: 0.7, recoverable: 0.3}}}}
    - {{type: cpe, rate: 0.5, pcpus: "0-1", start_s: 5, duration_s: 10}}
  storms:
    - {{type: cmc, pcpus: [2, 3], rate: 1000, start_s: 4, duration_s: 1.5, severity: fatal}}
"""


def scenario(seed: int = 1, text: str = SCENARIO):
    return parse_scenario_text(text.format(seed=seed))


# -- the plan -----------------------------------------------------------------------


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    first, again, other = plan_injections(scenario(1)), plan_injections(scenario(1)), None
    assert first == again
    assert [i.source for i in first] == [i.source for i in again]
    other = plan_injections(scenario(2))
    assert other != first
    # Storms do not depend on the seed; the Poisson arrivals do.
    assert [i for i in first if i.rate > 0] == [i for i in other if i.rate > 0]


def test_a_stream_on_one_pcpu_does_not_depend_on_the_others() -> None:
    """Each (stream, pCPU) has its own generator: adding a pCPU leaves the others' arrivals."""
    narrow = scenario(text=SCENARIO.replace("pcpus: all", "pcpus: [0, 1]"))
    wide = scenario()
    narrow_times = [i for i in plan_injections(narrow) if i.pcpu == 1]
    wide_times = [i for i in plan_injections(wide) if i.pcpu == 1]
    assert narrow_times == wide_times


def test_the_plan_is_sorted_and_inside_each_window() -> None:
    plan = plan_injections(scenario())
    assert plan == sorted(plan)
    for injection in plan:
        if injection.source == "streams[0]":
            assert 0 <= injection.t_s < 20 and injection.count == 1 and injection.rate == 0
        elif injection.source == "streams[1]":
            assert 5 <= injection.t_s < 15 and injection.pcpu in (0, 1)
            assert injection.type == "cpe" and injection.severity == "corrected"


def test_each_storm_is_one_paced_injection_per_pcpu() -> None:
    storms = [i for i in plan_injections(scenario()) if i.rate > 0]
    assert storms == [
        PlannedInjection(4.0, 2, "cmc", "fatal", 1500, 1000.0, "storms[0]"),
        PlannedInjection(4.0, 3, "cmc", "fatal", 1500, 1000.0, "storms[0]"),
    ]


BURSTS = """
name: b
seed: {seed}
pcpus: 4
duration_s: 10
workload:
  streams:
    - {{type: cmc, rate: 1, pcpus: all}}
  bursts:
    - {{type: cmc, pcpus: [1, 3], count: 25, at_s: 2.5}}
    - {{type: cpe, pcpus: "0-3", count: 1, at_s: 0, severity: fatal}}
    - {{type: cmc, pcpus: 2, count: 1000, at_s: 9.75, severity: recoverable}}
"""


def test_each_burst_is_one_unpaced_injection_per_pcpu_at_its_time() -> None:
    plan = plan_injections(scenario(text=BURSTS))
    bursts = [i for i in plan if i.source.startswith("bursts")]
    assert bursts == [
        PlannedInjection(0.0, 0, "cpe", "fatal", 1, 0.0),
        PlannedInjection(0.0, 1, "cpe", "fatal", 1, 0.0),
        PlannedInjection(0.0, 2, "cpe", "fatal", 1, 0.0),
        PlannedInjection(0.0, 3, "cpe", "fatal", 1, 0.0),
        PlannedInjection(2.5, 1, "cmc", "corrected", 25, 0.0),
        PlannedInjection(2.5, 3, "cmc", "corrected", 25, 0.0),
        PlannedInjection(9.75, 2, "cmc", "recoverable", 1000, 0.0),
    ]
    assert [i.source for i in bursts] == ["bursts[1]"] * 4 + ["bursts[0]"] * 2 + ["bursts[2]"]
    assert plan == sorted(plan)
    streams = [i for i in plan if i.source == "streams[0]"]
    assert planned_records(plan)["total"] == len(streams) + 4 + 50 + 1000


def test_bursts_are_the_same_for_every_seed_and_leave_the_streams_alone() -> None:
    first, again, other = (plan_injections(scenario(s, BURSTS)) for s in (1, 1, 2))
    assert first == again
    assert [i.source for i in first] == [i.source for i in again]
    bursts = [[i for i in p if i.source.startswith("bursts")] for p in (first, other)]
    assert bursts[0] == bursts[1]
    without = BURSTS.split("  bursts:", 1)[0]
    assert [i for i in first if i.source == "streams[0]"] == plan_injections(scenario(1, without))


def test_a_burst_of_five_trips_the_storm_rule_of_its_line() -> None:
    """A burst is created at once: its records are arrivals at the same instant."""
    burst = [PlannedInjection(1.0, 0, "cmc", "corrected", 5)]
    assert storm_trips(burst) == {(0, "cmc"): 1}
    assert storm_trips([PlannedInjection(1.0, 0, "cmc", "corrected", 4)]) == {}


def test_poisson_arrivals_have_the_stream_rate_and_exponential_gaps() -> None:
    text = """
name: long
seed: 5
pcpus: 2
duration_s: 10000
workload:
  streams: [{type: cmc, rate: 2.0, pcpus: all, severity: {corrected: 3, fatal: 1}}]
"""
    plan = plan_injections(parse_scenario_text(text))
    for pcpu in (0, 1):
        times = [i.t_s for i in plan if i.pcpu == pcpu]
        # 20 000 expected; the standard deviation of a Poisson count is sqrt(20 000) ~ 141.
        assert abs(len(times) - 20_000) < 600
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert statistics.fmean(gaps) == pytest.approx(0.5, rel=0.03)
        # Exponential: the standard deviation equals the mean.
        assert statistics.stdev(gaps) == pytest.approx(0.5, rel=0.05)
    severities = Counter(i.severity for i in plan)
    assert severities["recoverable"] == 0
    assert severities["fatal"] / len(plan) == pytest.approx(0.25, abs=0.02)


def test_planned_records_per_type() -> None:
    plan = [
        PlannedInjection(0.0, 0, "cmc", "corrected"),
        PlannedInjection(1.0, 1, "cpe", "corrected"),
        PlannedInjection(2.0, 1, "cmc", "fatal", 100, 50.0),
    ]
    assert planned_records(plan) == {"cmc": 101, "cpe": 1, "total": 102}


def test_storm_trips_count_five_within_a_second() -> None:
    burst = [PlannedInjection(0.2 * k, 0, "cmc", "corrected") for k in range(5)]  # 0.0 .. 0.8
    spread = [PlannedInjection(0.3 * k, 1, "cmc", "corrected") for k in range(5)]  # 0.0 .. 1.2
    assert storm_trips(burst + spread) == {(0, "cmc"): 1}
    assert storm_trips(burst + spread, margin=0.3) == {(0, "cmc"): 1, (1, "cmc"): 1}
    edge = [PlannedInjection(0.25 * k, 3, "cmc", "corrected") for k in range(5)]  # 0.0 .. 1.0
    assert storm_trips(edge) == {(3, "cmc"): 1}  # a window is inclusive: 1.0 s apart is within
    storm = [PlannedInjection(0.0, 2, "cpe", "corrected", 10, 100.0)]
    assert storm_trips(storm) == {}
    # The rule counts afresh after each storm: records 5 and 10 trip it.
    assert storm_trips(storm, include_storms=True) == {(2, "cpe"): 2}


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_steady_streams_never_trip_the_storm_rule_by_chance(name: str) -> None:
    """Only the storms make lines poll, so expect_transitions and the demo stay predictable.

    Bursts are placed by hand (the hazard scenarios trip the rule with them on purpose)."""
    built = load_builtin(name)
    plan = [i for i in plan_injections(built) if not i.source.startswith("bursts")]
    assert storm_trips(plan, margin=0.3) == {}
    storming = {(p, s.type) for s in built.storms for p in s.pcpus}
    for transition in built.checks.expect_transitions:
        assert (transition.pcpu, transition.type) in storming


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_scenarios_are_ci_sized(name: str) -> None:
    built = load_builtin(name)
    assert built.duration_s <= 60
    plan = plan_injections(built)
    assert len(plan) < 2000  # calls
    assert planned_records(plan)["total"] < 50_000
    if built.checks.all_lines_back_to_interrupt:
        # Storms end well before the workload does, leaving time to poll back.
        assert all(s.start_s + s.duration_s <= built.duration_s - 5 for s in built.storms)


# -- the driver against real pCPU servers ---------------------------------------------


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
