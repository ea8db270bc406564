"""The checkers on hand-built runs: each rule passes when kept and fails when broken."""

from __future__ import annotations

import dataclasses

import pytest
from test_checkers_data import MS, START_NS, event, synthetic_run

from xenmca.testbed.check.checkers import (
    CheckResult,
    account,
    latency_stats,
    overall_valid,
    percentile,
    run_checks,
)
from xenmca.testbed.run.data import FirmwareCounts, LoggedRecord, RunData
from xenmca.testbed.scenario.model import Checks, ExpectedTransition


def by_name(data: RunData) -> dict[str, CheckResult]:
    return {c.name: c for c in run_checks(data)}


def with_events(data: RunData, *extra: dict) -> RunData:
    return dataclasses.replace(data, events=sorted([*data.events, *extra], key=_t))


def with_checks(data: RunData, **fields: object) -> RunData:
    checks = dataclasses.replace(data.scenario.checks, **fields)  # type: ignore[arg-type]
    return dataclasses.replace(data, scenario=dataclasses.replace(data.scenario, checks=checks))


def _t(e: dict) -> int:
    return int(e["t_mono_ns"])


def test_a_clean_run_passes_every_check() -> None:
    data = synthetic_run()
    checks = by_name(data)
    assert set(checks) == {
        "conservation",
        "duplicates",
        "cleared_before_logged",
        "latency_p99",
        "latency_max",
        "transition:pcpu1:CMC:polling",
        "transition:pcpu1:CMC:interrupt",
        "lines_back_to_interrupt",
        "stranded",
        "fairness",
        "isolation",
        "local_calls",
    }
    assert all(c.records == () and c.records_total == 0 for c in checks.values())
    assert {c.status for c in checks.values()} == {"pass"}, checks
    assert overall_valid(checks.values()) is True
    acc = account(data)
    assert (acc.injected, acc.logged, acc.lost, acc.duplicates, acc.cleared_before_logged) == (
        10,
        10,
        0,
        0,
        0,
    )


def test_a_lost_record_fails_conservation() -> None:
    data = synthetic_run()
    firmware = [*data.firmware[:-1], dataclasses.replace(data.firmware[-1], created=6)]
    lost = dataclasses.replace(data, firmware=firmware)
    check = by_name(lost)["conservation"]
    assert (check.status, check.observed, check.bound) == ("fail", 1, 0)
    assert overall_valid(run_checks(lost)) is False
    assert by_name(with_checks(lost, max_lost=1))["conservation"].status == "pass"


def test_pending_and_overflowed_records_are_accounted_for() -> None:
    data = synthetic_run()
    extra = FirmwareCounts(1, "CPE", created=7, pending=3, cleared=0, overflowed=4)
    data = dataclasses.replace(data, firmware=[*data.firmware, extra])
    acc = account(data)
    assert (acc.injected, acc.pending, acc.overflowed, acc.lost) == (17, 3, 4, 0)
    assert by_name(data)["conservation"].status == "pass"


def test_more_logged_than_created_fails_conservation() -> None:
    data = synthetic_run()
    ghost = LoggedRecord(0, 99, "CMC", "corrected", START_NS + MS, START_NS + 2 * MS)
    check = by_name(dataclasses.replace(data, log=[*data.log, ghost]))["conservation"]
    assert (check.status, check.observed) == ("fail", -1)


def test_not_drained_pending_records_fail_stranded_and_loss_still_fails_conservation() -> None:
    data = synthetic_run()
    pending = FirmwareCounts(
        0, "CPE", created=2, pending=2, cleared=0, overflowed=0, pending_ids=(11, 12)
    )
    undrained = dataclasses.replace(data, firmware=[*data.firmware, pending], drained=False)
    checks = by_name(undrained)
    conservation, stranded = checks["conservation"], checks["stranded"]
    assert conservation.status == "pass" and "not drained" in conservation.detail
    assert (stranded.status, stranded.observed, stranded.bound) == ("fail", 2, 0)
    assert [(r.pcpu, r.type, r.record_id) for r in stranded.records] == [
        (0, "CPE", 11),
        (0, "CPE", 12),
    ]
    assert "the drain did not finish" in stranded.detail
    assert overall_valid(checks.values()) is False
    assert by_name(with_checks(undrained, max_stranded=2))["stranded"].status == "pass"
    one_lost = FirmwareCounts(0, "CPE", created=3, pending=2, cleared=0, overflowed=0)
    lossy = dataclasses.replace(undrained, firmware=[*data.firmware, one_lost])
    assert by_name(with_checks(lossy, max_lost=0))["conservation"].status == "fail"


def test_a_second_new_commit_of_a_record_is_a_duplicate() -> None:
    data = synthetic_run()
    again = event(
        START_NS + 1900 * MS,
        "dom0",
        "record_committed",
        pcpu=0,
        type="CMC",
        record_id=2,
        duplicate=False,
        commit_ms=1.0,
    )
    check = by_name(with_events(data, again))["duplicates"]
    assert (check.status, check.observed) == ("fail", 1)


def test_a_recognised_redelivery_is_not_a_duplicate() -> None:
    data = synthetic_run()
    dropped = event(
        START_NS + 1900 * MS,
        "dom0",
        "record_committed",
        pcpu=0,
        type="CMC",
        record_id=2,
        duplicate=True,
        commit_ms=1.0,
    )
    data = dataclasses.replace(with_events(data, dropped), redelivered=1)
    assert by_name(data)["duplicates"].status == "pass"
    assert account(data).redelivered == 1


def test_a_duplicate_log_row_counts_once_with_its_commit_event() -> None:
    data = synthetic_run()
    row = data.log[0]
    again = event(
        row.logged_monotonic_ns + MS,
        "dom0",
        "record_committed",
        pcpu=row.pcpu,
        type="CMC",
        record_id=row.record_id,
        duplicate=False,
    )
    doubled = with_events(dataclasses.replace(data, log=[*data.log, row]), again)
    check = by_name(doubled)["duplicates"]
    assert (check.status, check.observed) == ("fail", 1)
    assert account(doubled).logged == 10  # distinct (pcpu, record_id)


def test_clears_before_the_commit_and_of_unlogged_records_are_counted() -> None:
    data = synthetic_run()
    row = data.log[3]
    early = event(
        row.logged_monotonic_ns - MS,
        "pcpu",
        "record_cleared",
        pcpu=row.pcpu,
        type="CMC",
        record_id=row.record_id,
        already_cleared=False,
    )
    never = event(
        START_NS + 1800 * MS,
        "pcpu",
        "record_cleared",
        pcpu=1,
        type="CMC",
        record_id=42,
        already_cleared=False,
    )
    repeat = event(
        START_NS + 1850 * MS,
        "pcpu",
        "record_cleared",
        pcpu=1,
        type="CMC",
        record_id=43,
        already_cleared=True,
    )
    check = by_name(with_events(data, early, never, repeat))["cleared_before_logged"]
    assert (check.status, check.observed, check.bound) == ("fail", 2, 0)


def test_latency_bounds() -> None:
    slow = synthetic_run(latency_ms=80.0)
    checks = by_name(slow)
    assert checks["latency_p99"].status == "fail"
    assert checks["latency_max"].status == "pass"
    assert checks["latency_p99"].observed == pytest.approx(80.0)
    tight = by_name(with_checks(slow, latency_max_ms=10.0))
    assert tight["latency_max"].status == "fail"
    unbounded = by_name(with_checks(slow, latency_p99_ms=None, latency_max_ms=None))
    assert "latency_p99" not in unbounded and "latency_max" not in unbounded


def test_records_without_creation_time_are_left_out_of_latency() -> None:
    data = synthetic_run()
    unknown = LoggedRecord(0, 77, "CMC", "corrected", 0, START_NS + 10**9)
    stats = latency_stats([*data.log, unknown])
    assert stats["count"] == 10
    assert stats["p50"] == pytest.approx(5.0)
    assert stats["max"] == pytest.approx(5.0)
    blind = dataclasses.replace(data, log=[unknown])
    assert by_name(blind)["latency_p99"].status == "unknown"


def test_a_missing_expected_transition_fails() -> None:
    data = synthetic_run()
    want = (*data.scenario.checks.expect_transitions, ExpectedTransition(0, "CPE", "polling"))
    checks = by_name(with_checks(data, expect_transitions=want))
    assert checks["transition:pcpu0:CPE:polling"].status == "fail"
    assert checks["transition:pcpu1:CMC:polling"].status == "pass"  # "cmc" matches "CMC"


def test_a_line_stuck_in_polling_fails() -> None:
    data = synthetic_run()
    stuck = event(
        START_NS + 1700 * MS,
        "xen",
        "throttle_transition",
        pcpu=0,
        type="CPE",
        old="interrupt",
        new="polling",
        interval_s=0.05,
        why="storm",
    )
    check = by_name(with_events(data, stuck))["lines_back_to_interrupt"]
    assert (check.status, check.observed) == ("fail", 1)
    assert "pCPU 0 CPE" in check.detail
    assert (
        by_name(with_checks(with_events(data, stuck), all_lines_back_to_interrupt=False)).get(
            "lines_back_to_interrupt"
        )
        is None
    )


def test_a_coordinator_restart_puts_lines_back_in_interrupt_mode() -> None:
    data = synthetic_run()
    stuck = event(
        START_NS + 1700 * MS,
        "xen",
        "throttle_transition",
        pcpu=0,
        type="CPE",
        old="interrupt",
        new="polling",
        interval_s=0.05,
        why="storm",
    )
    restart = event(START_NS + 1750 * MS, "xen", "coordinator_started", pcpus=2)
    assert by_name(with_events(data, stuck, restart))["lines_back_to_interrupt"].status == "pass"


def test_problems_make_the_affected_checks_unknown() -> None:
    data = synthetic_run()
    events_gone = by_name(dataclasses.replace(data, problems=["events: dom0's file is missing"]))
    assert events_gone["conservation"].status == "pass"
    assert events_gone["latency_p99"].status == "pass"
    assert events_gone["stranded"].status == "pass"
    for name in (
        "duplicates",
        "cleared_before_logged",
        "lines_back_to_interrupt",
        "fairness",
        "isolation",
        "local_calls",
    ):
        assert events_gone[name].status == "unknown"
    firmware_gone = by_name(dataclasses.replace(data, problems=["firmware: pCPU 1 silent"]))
    assert firmware_gone["stranded"].status == "unknown"
    log_gone = by_name(dataclasses.replace(data, problems=["log: unreadable"]))
    assert log_gone["fairness"].status == "unknown" and log_gone["isolation"].status == "pass"
    assert events_gone["transition:pcpu1:CMC:polling"].status == "unknown"
    assert overall_valid(events_gone.values()) == "unknown"
    anything = run_checks(dataclasses.replace(data, problems=["pCPUs [3] did not answer"]))
    assert {c.status for c in anything} == {"unknown"}
    assert "would be pass" in anything[0].detail


@pytest.mark.parametrize(
    ("statuses", "valid"),
    [
        (["pass", "pass"], True),
        (["pass", "fail"], False),
        (["pass", "unknown"], "unknown"),
        (["unknown", "fail"], False),
        ([], True),
    ],
)
def test_overall_valid(statuses: list[str], valid: object) -> None:
    checks = [CheckResult(f"c{i}", s, 0, 0) for i, s in enumerate(statuses)]  # type: ignore[arg-type]
    assert overall_valid(checks) == valid
    assert type(overall_valid(checks)) is type(valid)


def test_percentile_interpolates_like_numpy() -> None:
    numpy = pytest.importorskip("numpy")
    values = [3.0, 1.0, 10.0, 7.5, 2.25, 4.0, 100.0]
    for q in (0, 25, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(float(numpy.percentile(values, q)))
    assert percentile([], 50) is None


def test_default_checks_need_no_bounds() -> None:
    data = dataclasses.replace(synthetic_run(storm=False), scenario=synthetic_run().scenario)
    plain = with_checks(data, expect_transitions=(), latency_p99_ms=None, latency_max_ms=None)
    assert [c.name for c in run_checks(plain)] == [
        "conservation",
        "stranded",
        "duplicates",
        "cleared_before_logged",
        "lines_back_to_interrupt",
        "fairness",
        "isolation",
        "local_calls",
    ]
    quiet = with_checks(plain, fairness=False, isolation=False)
    assert "fairness" not in {c.name for c in run_checks(quiet)}
    assert "isolation" not in {c.name for c in run_checks(quiet)}
    assert Checks().max_lost == 0
