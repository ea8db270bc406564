"""The stranded checker: records still pending after the drain, each line diagnosed from the
coordinator's state (final_xen)."""

from __future__ import annotations

import dataclasses
from typing import Any

from test_checkers_data import MS, START_NS, Served, history_run

from xenmca.testbed.check.final_xen import diagnose
from xenmca.testbed.check.stranded import check_stranded
from xenmca.testbed.run.data import FirmwareCounts, RunData
from xenmca.testbed.scenario.model import Checks


def t(ms: float) -> int:
    return START_NS + int(ms * MS)


# pCPU 0's records 1-2 logged; its 3-4 and pCPU 1's 1 left pending.
HISTORY = [
    Served(0, 1, t(1), t(2)),
    Served(0, 2, t(3), t(4)),
    Served(0, 3, t(5), None),
    Served(0, 4, t(6), None),
    Served(1, 1, t(7), None),
]


def queue(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": f"RECORD_TYPE_{type_}", **fields}


def stranded(final_xen: dict[str, Any] | None = None, **checks: Any) -> RunData:
    return history_run(
        HISTORY, final_xen=final_xen, checks=Checks(all_lines_back_to_interrupt=False, **checks)
    )


def test_nothing_pending_passes() -> None:
    data = history_run(HISTORY[:2])
    check = check_stranded(data)
    assert (check.status, check.observed, check.records) == ("pass", 0, ())


def test_pending_records_fail_and_are_named() -> None:
    check = check_stranded(stranded())
    assert (check.status, check.observed, check.bound) == ("fail", 3, 0)
    assert [(r.pcpu, r.type, r.record_id) for r in check.records] == [
        (0, "CMC", 3),
        (0, "CMC", 4),
        (1, "CMC", 1),
    ]
    assert "3 records still pending in firmware after the drain (the drain did not finish)" in (
        check.detail
    )
    assert "the coordinator was not described after the drain" in check.detail


def test_the_scenario_may_expect_records_to_stay_pending() -> None:
    check = check_stranded(stranded(max_stranded=3))
    assert check.status == "pass" and "expects up to 3" in check.detail
    assert check.records_total == 3  # still named


def test_no_entry_queued() -> None:
    final = {"queues": [queue("CMC"), queue("CPE", depth=1, entries=[{"pcpu": 1}])]}
    check = check_stranded(stranded(final))
    assert check.status == "fail"
    assert "pCPU 0 CMC: 2 pending, no entry queued;" in check.detail
    assert "pCPU 1 CMC: 1 pending, no entry queued (pCPU 1 has an entry in the CPE queue)" in (
        check.detail
    )
    assert check.records[0].note == "no entry queued"


def test_queued_but_nothing_delivers_it() -> None:
    final = {
        "injected_types": ["RECORD_TYPE_CMC"],
        "queues": [queue("CMC", depth=2, entries=[{"pcpu": 1}, {}])],  # {}: pCPU 0, a default
    }
    check = check_stranded(stranded(final))
    assert check.status == "fail"
    assert (
        "pCPU 0 CMC: 2 pending, queued (2 of 2 waiting) but nothing delivers it:"
        " no virtual interrupt in flight or pending" in check.detail
    )
    assert "pCPU 1 CMC: 1 pending, queued (1 of 2 waiting) but nothing delivers it" in (
        check.detail
    )


def test_other_diagnoses() -> None:
    waiting = queue("CMC", depth=1, entries=[{"pcpu": 1}])
    in_flight = {"pcpu": 0, "state": "ENTRY_STATE_INJECTED"}
    final = {"queues": [{**waiting, "in_flight": in_flight}]}
    assert diagnose(final, 0, "CMC") == "its entry is in flight (injected) but was never finished"
    assert diagnose(final, 1, "CMC") == (
        "queued (1 of 1 waiting) behind pCPU 0's entry in flight, never finished"
    )
    final = {"queues": [{**waiting, "virq_pending": True}]}
    assert "a virtual interrupt is pending but dom0 never took it" in diagnose(final, 1, "CMC")
    final = {"queues": [queue("CPE", depth=1, entries=[{"pcpu": 1}])]}
    assert "CPE reaches dom0 only when dom0 polls" in diagnose(final, 1, "CPE")
    final = {"queues": [queue("CMC", depth=3)]}  # an older coordinator: no entries listed
    assert diagnose(final, 1, "CMC") == "3 CMC entries queued, for which pCPUs is not reported"
    assert diagnose({"queues": [queue("CMC")]}, 1, "MCA") == "no MCA queue in the coordinator"


def test_pending_ids_not_read_are_named_by_line() -> None:
    data = stranded()
    cut = [
        dataclasses.replace(f, pending_ids=f.pending_ids[:1], pending_ids_complete=False)
        if f.pcpu == 0
        else f
        for f in data.firmware
    ]
    extra = FirmwareCounts(2, "CPE", created=4, pending=4, cleared=0, overflowed=0)
    check = check_stranded(dataclasses.replace(data, firmware=[*cut, extra]))
    assert check.observed == 7
    assert [(r.pcpu, r.type, r.record_id, r.note) for r in check.records][:3] == [
        (0, "CMC", None, "1 more pending, ids not read"),
        (0, "CMC", 3, "the coordinator was not described after the drain"),
        (1, "CMC", 1, "the coordinator was not described after the drain"),
    ]
    assert check.records[-1].record_id is None and check.records[-1].pcpu == 2
