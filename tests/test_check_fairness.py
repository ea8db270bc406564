"""The fairness checker: round-robin service passes, a pCPU re-added at the head fails it."""

from __future__ import annotations

import dataclasses
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_checkers_data import MS, START_NS, Served, event, history_run, serve

from xenmca.testbed.check.checkers import run_checks
from xenmca.testbed.check.dominance import count_dominated
from xenmca.testbed.check.fairness import TimedRecord, check_fairness, pending_pcpus
from xenmca.testbed.check.result import CheckResult
from xenmca.testbed.run.data import FaultRecord, RunData
from xenmca.testbed.scenario.model import Checks

PROPERTY = settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def t(ms: float) -> int:
    return START_NS + int(ms * MS)


def busy_and_quiet(after_clear: str) -> RunData:
    """pCPU 0 makes 10 records at once; pCPUs 1 and 2 one each just after."""
    arrivals = [(0, t(0))] * 10 + [(1, t(0.1)), (2, t(0.2))]
    return history_run(serve(arrivals, service_ns=MS, after_clear=after_clear), pcpus=3)


def fairness(data: RunData) -> CheckResult:
    return next(c for c in run_checks(data) if c.name == "fairness")


def test_round_robin_service_passes() -> None:
    check = fairness(busy_and_quiet("tail"))
    assert (check.status, check.observed, check.records) == ("pass", 0, ())
    assert "0 of 12 judged records" in check.detail


def test_a_pcpu_re_added_at_the_head_starves_the_others_and_they_are_named() -> None:
    check = fairness(busy_and_quiet("head"))
    assert (check.status, check.observed, check.bound) == ("fail", 2, 0)
    assert [(r.pcpu, r.type, r.record_id) for r in check.records] == [(1, "CMC", 1), (2, "CMC", 1)]
    # pCPU 0's 9 later records overtook each; pCPU 0 and the other quiet one were pending.
    assert check.records[0].note == "overtaken 9 times, bound 2"
    assert check.records_total == 2
    assert "worst: pCPU 1 CMC #1 (overtaken 9 times, bound 2)" in check.detail


def test_worst_first() -> None:
    # pCPU 1's record arrives first and waits longest behind pCPU 0's burst.
    arrivals = [(0, t(0))] * 8 + [(1, t(0.1)), (0, t(3.5)), (2, t(4.5))]
    check = check_fairness(history_run(serve(arrivals, after_clear="head"), pcpus=3))
    assert check.status == "fail"
    times = [int(r.note.split()[1]) for r in check.records]
    assert times == sorted(times, reverse=True) and check.records[0].pcpu == 1


def test_max_overtaken_replaces_the_pending_pcpus_bound() -> None:
    data = busy_and_quiet("head")
    loose = dataclasses.replace(
        data, scenario=dataclasses.replace(data.scenario, checks=Checks(max_overtaken=9))
    )
    assert check_fairness(loose).status == "pass"
    tight = dataclasses.replace(
        data, scenario=dataclasses.replace(data.scenario, checks=Checks(max_overtaken=8))
    )
    check = check_fairness(tight)
    assert check.status == "fail" and check.records[0].note == "overtaken 9 times, bound 8"
    assert check_fairness(busy_and_quiet("tail")).status == "pass"


def test_a_wait_overlapping_a_disturbance_is_excused_and_counted() -> None:
    data = busy_and_quiet("head")
    fault = FaultRecord("kill", "dom0", t(2), t(3), "restarted")
    excused = check_fairness(dataclasses.replace(data, faults=[fault]))
    assert excused.status == "pass"
    assert "excused (their wait overlapped a fault: " in excused.detail
    restart = event(t(5), "xen", "coordinator_started", pcpus=3)
    failed = event(t(5), "xen", "entry_requeued", pcpu=1, type="CMC", why="call_failed")
    other_line = event(t(5), "xen", "entry_requeued", pcpu=1, type="CPE", why="call_failed")
    detached = [event(t(4), "xen", "dom0_detached"), event(t(6), "xen", "dom0_attached")]

    def with_events(*extra: dict) -> CheckResult:
        events = sorted([*data.events, *extra], key=lambda e: e["t_mono_ns"])
        return check_fairness(dataclasses.replace(data, events=events))

    assert with_events(restart).status == "pass"
    assert "a coordinator restart" in with_events(restart).detail
    only_pcpu1 = with_events(failed)
    assert [r.pcpu for r in only_pcpu1.records] == [2]
    assert "a failed call on its line: 1" in only_pcpu1.detail
    assert [r.pcpu for r in with_events(other_line).records] == [1, 2]
    assert with_events(*detached).status == "pass"
    # pCPU 1's link came back while its record waited: it was learnt by reconciliation.
    reconnected = event(t(5), "xen", "pcpu_connected", pcpu=1, connects=2)
    # A restarted coordinator's first connections count too; those before the run do not.
    first_connect = event(t(5), "xen", "pcpu_connected", pcpu=1, connects=1)
    before_the_run = event(START_NS - MS, "xen", "pcpu_connected", pcpu=1, connects=1)
    assert [r.pcpu for r in with_events(reconnected).records] == [2]
    assert "its pCPU's link reconnecting: 1" in with_events(reconnected).detail
    assert [r.pcpu for r in with_events(first_connect).records] == [2]
    assert [r.pcpu for r in with_events(before_the_run).records] == [1, 2]


def test_records_found_by_a_poll_are_ready_when_the_line_is_polled() -> None:
    # pCPU 1's line is polling: its record, made at 0.1 ms, is only seen by the poll at 6 ms,
    # then served after the record in flight (pCPU 0's records are logged at 1, 2, ... 10 ms).
    arrivals = [(0, t(0))] * 10
    served = serve(arrivals, after_clear="tail")
    late = Served(1, 1, t(0.1), t(7.5))
    polling = [
        event(t(0.05), "xen", "throttle_transition", pcpu=1, type="CMC", old="interrupt",
              new="polling", interval_s=0.006, why="storm"),
        event(t(6), "xen", "poll", pcpu=1, type="CMC", found=1, interval_s=0.006),
    ]  # fmt: skip
    data = history_run([*served, late], extra_events=polling)
    assert check_fairness(data).status == "pass"
    unpolled = history_run([*served, late])
    check = check_fairness(unpolled)
    assert check.status == "fail" and check.records[0].note == "overtaken 6 times, bound 1"


def test_a_record_is_ready_when_its_late_interrupt_reaches_the_coordinator() -> None:
    # pCPU 1's interrupt for its record made at 0.1 ms is resent over a recovering
    # connection and reaches the coordinator at 6 ms: records queued before then are
    # not overtakings. Without that event the same history fails.
    arrivals = [(0, t(0))] * 10
    served = serve(arrivals, after_clear="tail")
    late = Served(1, 1, t(0.1), t(7.5))
    heard = [event(t(6), "xen", "interrupt_received", pcpu=1, type="CMC", record_id=1)]
    assert check_fairness(history_run([*served, late], extra_events=heard)).status == "pass"
    # An interrupt heard after the record was logged does not move its ready time.
    after = [event(t(8), "xen", "interrupt_received", pcpu=1, type="CMC", record_id=1)]
    check = check_fairness(history_run([*served, late], extra_events=after))
    assert check.status == "fail" and check.records[0].note == "overtaken 6 times, bound 1"


def test_records_without_a_creation_time_are_not_judged() -> None:
    data = busy_and_quiet("head")
    log = [dataclasses.replace(r, created_monotonic_ns=0) for r in data.log]
    events = [e for e in data.events if e["kind"] != "records_created"]
    check = check_fairness(dataclasses.replace(data, log=log, events=events))
    assert check.status == "pass" and "12 not judged" in check.detail


def test_fairness_over_twenty_thousand_records_of_64_pcpus() -> None:
    rng = random.Random(5)
    arrivals = [(rng.randrange(64), t(i * 0.01)) for i in range(20_000)]
    data = history_run(serve(arrivals, service_ns=MS // 50), pcpus=64)
    assert check_fairness(data).status == "pass"


@PROPERTY
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 4_000)), min_size=1, max_size=60),
    st.lists(st.integers(100, 400), min_size=1, max_size=8),
    st.lists(st.integers(0, 99), min_size=1, max_size=8),
)
def test_round_robin_service_of_random_arrivals_never_fails_fairness(
    arrivals: list[tuple[int, int]], service: list[int], delay: list[int]
) -> None:
    # Interrupt delays shorter than any service: each other pCPU overtakes at most once.
    timed = [(pcpu, START_NS + at * 1000) for pcpu, at in arrivals]
    served = serve(
        timed,
        service_ns=[s * 1000 for s in service],
        interrupt_delay_ns=[d * 1000 for d in delay],
    )
    check = check_fairness(history_run(served, pcpus=6))
    assert check.status == "pass", check.detail


@PROPERTY
@given(
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=40),
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=40),
)
def test_dominance_counting_matches_brute_force(
    points: list[tuple[int, int]], queries: list[tuple[int, int]]
) -> None:
    expected = [sum(1 for x, y in points if x > a and y < b) for a, b in queries]
    assert count_dominated(points, queries) == expected


@PROPERTY
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 40), st.integers(1, 15), st.booleans()),
        max_size=30,
    ),
    st.lists(st.tuples(st.integers(0, 50), st.integers(1, 20)), min_size=1, max_size=20),
)
def test_pending_pcpus_matches_brute_force(
    spans: list[tuple[int, int, int, bool]], waits: list[tuple[int, int]]
) -> None:
    records = [
        TimedRecord(pcpu, i, start, None if open_ else start + length)
        for i, (pcpu, start, length, open_) in enumerate(spans)
    ]
    queries = [(a, a + length) for a, length in waits]
    expected = [
        len(
            {
                r.pcpu
                for r in records
                if r.created is not None and r.created < b and (r.logged is None or r.logged > a)
            }
        )
        for a, b in queries
    ]
    assert pending_pcpus(records, queries) == expected
