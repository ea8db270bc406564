"""The isolation checker: a line switched to polling needs a storm of its own records."""

from __future__ import annotations

import dataclasses
from typing import Any

from test_checkers_data import MS, START_NS, Served, event, history_run

from xenmca.testbed.check.isolation import check_isolation, storm_ends
from xenmca.testbed.run.data import RunData
from xenmca.testbed.scenario.model import Throttle


def t(ms: float) -> int:
    return START_NS + int(ms * MS)


def transition(at: float, pcpu: int, new: str, why: str, type_: str = "CMC") -> dict[str, Any]:
    old = "interrupt" if new == "polling" else "polling"
    return event(
        t(at), "xen", "throttle_transition", pcpu=pcpu, type=type_, old=old, new=new,
        interval_s=0.1, why=why,
    )  # fmt: skip


def storm(pcpu: int, at: float, count: int, first_id: int = 1) -> list[Served]:
    return [Served(pcpu, first_id + i, t(at + i * 0.1), t(at + 500 + i)) for i in range(count)]


QUIET = [Served(0, 1, t(10), t(11)), Served(1, 1, t(20), t(21))]
# pCPU 0 and 1 make records while their lines poll (150 ms), then again later.
WHILE_POLLING = [Served(0, 2, t(150), t(400)), Served(0, 3, t(160), t(410))]
AFTER = [Served(0, 4, t(900), t(901))]


def run(records: list[Served], *transitions: dict[str, Any], **fields: Any) -> RunData:
    return history_run(records, pcpus=3, extra_events=transitions, **fields)


def test_a_storm_on_one_pcpu_throttles_only_its_line() -> None:
    data = run(
        [*QUIET, *storm(2, 100, 10), *WHILE_POLLING, *AFTER],
        transition(100.5, 2, "polling", "storm"),
        transition(300, 2, "interrupt", "empty poll"),
    )
    check = check_isolation(data)
    assert (check.status, check.observed, check.records) == ("pass", 0, ())
    assert "5 records within 1 s, created or received by the coordinator" in check.detail


def test_a_quiet_line_throttled_by_another_pcpus_storm_is_named_with_its_records() -> None:
    why = "storm on pCPU 2"
    data = run(
        [*QUIET, *storm(2, 100, 10), *WHILE_POLLING, *AFTER],
        *(transition(100.5, pcpu, "polling", why) for pcpu in range(3)),
        *(transition(300, pcpu, "interrupt", "empty poll") for pcpu in range(3)),
    )
    check = check_isolation(data)
    assert (check.status, check.observed, check.bound) == ("fail", 2, 0)
    named = [(r.pcpu, r.type, r.record_id) for r in check.records]
    assert named == [(0, "CMC", None), (1, "CMC", None), (0, "CMC", 2), (0, "CMC", 3)]
    assert check.records[0].note == "throttled once with no storm of its own: storm on pCPU 2"
    assert check.records[2].note == "created while throttled (storm on pCPU 2)"
    assert check.records_total == 4
    assert "2 lines switched to polling without a storm of their own" in check.detail
    assert "coordinator): pCPU 0 CMC, pCPU 1 CMC; 2 records created" in check.detail


def test_an_old_storm_does_not_justify_a_later_throttle() -> None:
    data = run(
        [*storm(0, 100, 6), *storm(2, 2000, 6)],
        transition(100.6, 0, "polling", "storm"),
        transition(300, 0, "interrupt", "empty poll"),
        transition(2000.6, 0, "polling", "storm on pCPU 2"),
        transition(2000.6, 2, "polling", "storm"),
        transition(2300, 0, "interrupt", "empty poll"),
        transition(2300, 2, "interrupt", "empty poll"),
    )
    check = check_isolation(data)
    assert check.status == "fail"
    assert [(r.pcpu, r.record_id) for r in check.records] == [(0, None)]
    assert check.records[0].note.endswith("storm on pCPU 2")


def test_too_few_or_too_spread_records_are_no_storm() -> None:
    spread = [Served(1, i + 1, t(i * 300), t(i * 300 + 1)) for i in range(5)]
    data = run(spread, transition(1250, 1, "polling", "storm"))
    assert check_isolation(data).status == "fail"  # 5 records, but over 1.2 s
    tight = [Served(1, i + 1, t(i * 200), t(i * 200 + 1)) for i in range(5)]
    assert check_isolation(run(tight, transition(850, 1, "polling", "storm"))).status == "pass"
    four = dataclasses.replace(
        run(tight, transition(850, 1, "polling", "storm")).scenario,
        throttle=Throttle(settings={"history_length": 6}),
    )
    data = dataclasses.replace(run(tight, transition(850, 1, "polling", "storm")), scenario=four)
    assert check_isolation(data).status == "fail"


def test_a_batch_counts_all_its_records_including_overflowed() -> None:
    burst = event(
        t(100), "pcpu", "records_created", pcpu=1, type="CPE", first_record_id=1,
        last_record_id=2, count=5, stored=2, overflowed=3,
    )  # fmt: skip
    data = run([], burst, transition(100.2, 1, "polling", "storm", type_="CPE"))
    assert check_isolation(data).status == "pass"


def test_interval_changes_and_unknown_settings() -> None:
    halve = transition(150, 2, "polling", "records found: halve")
    data = run(storm(2, 100, 5), transition(100.5, 2, "polling", "storm"), halve)
    assert check_isolation(data).status == "pass"
    bad = dataclasses.replace(data.scenario, throttle=Throttle(preset="nonesuch"))
    check = check_isolation(dataclasses.replace(data, scenario=bad))
    assert check.status == "unknown" and "nonesuch" in check.detail


def test_interrupts_bunched_by_a_delay_are_still_the_lines_own_storm() -> None:
    # Made over 1.2 s, but a network cut delivered their interrupts within 10 ms.
    spread = [Served(1, i + 1, t(i * 300), t(1300 + i)) for i in range(5)]
    received = [
        event(t(1250 + i), "xen", "interrupt_received", pcpu=1, type="CMC", record_id=i + 1)
        for i in range(5)
    ]
    again = event(t(1252.5), "xen", "interrupt_received", pcpu=1, type="CMC", record_id=2)
    throttled = transition(1254.5, 1, "polling", "storm")
    assert check_isolation(run(spread, *received, throttled)).status == "pass"
    # The same record's interrupt twice counts once.
    assert check_isolation(run(spread, *received[1:], again, throttled)).status == "fail"


def test_storm_ends() -> None:
    window = 1000 * MS
    assert storm_ends([(t(0), 2), (t(500), 2), (t(1000), 1)], 5, window) == [t(1000)]
    assert storm_ends([(t(0), 2), (t(500), 2), (t(1001), 1)], 5, window) == []
    assert storm_ends([(t(0), 5), (t(2000), 5)], 5, window) == [t(0), t(2000)]
