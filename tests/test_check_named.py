"""Records named by the counting checks: lost, unexpected, duplicated, cleared before logged,
slowest; and the RecordRef / CheckResult shape."""

from __future__ import annotations

import dataclasses
import json

from test_checkers_data import MS, START_NS, Served, event, history_run, synthetic_run

from xenmca.testbed.check.checkers import run_checks
from xenmca.testbed.check.result import MAX_NAMED, CheckResult, RecordRef, keep_named, label_of
from xenmca.testbed.run.data import LoggedRecord, RunData


def by_name(data: RunData) -> dict[str, CheckResult]:
    return {c.name: c for c in run_checks(data)}


def ids(check: CheckResult) -> list[tuple[int, str, int | None]]:
    return [(r.pcpu, r.type, r.record_id) for r in check.records]


def test_record_ref_shape() -> None:
    ref = RecordRef(3, "CMC", 17, "why")
    assert ref.as_dict() == {"pcpu": 3, "type": "CMC", "record_id": 17, "note": "why"}
    assert RecordRef(3, "CMC", 17).as_dict() == {"pcpu": 3, "type": "CMC", "record_id": 17}
    assert ref.label() == "pCPU 3 CMC #17 (why)"
    assert RecordRef(3, "CPE", None).label() == "pCPU 3 CPE line"
    assert ref == RecordRef(3, "CMC", 17, "another note")  # the note is not identity
    assert label_of(ref.as_dict()) == ref.label()


def test_keep_named_sorts_dedupes_and_caps() -> None:
    refs = [RecordRef(p, "CMC", i) for i in range(40, 0, -1) for p in (1, 0)]
    kept, total = keep_named([*refs, refs[0]])
    assert total == 80 and len(kept) == MAX_NAMED
    assert kept[0] == RecordRef(0, "CMC", 1) and kept[-1] == RecordRef(1, "CMC", 10)
    worst_first, _ = keep_named(refs[:3], ordered=True)
    assert worst_first == tuple(refs[:3])
    check = CheckResult("x", "fail", 1, 0).naming(refs)
    plain = check.as_dict()
    assert plain["records_total"] == 80 and len(plain["records"]) == MAX_NAMED
    json.dumps(plain)


def test_lost_records_are_named_by_id() -> None:
    data = synthetic_run()
    lossy = dataclasses.replace(data, log=[r for r in data.log if r.record_id not in (2, 4)])
    check = by_name(lossy)["conservation"]
    assert (check.status, check.observed) == ("fail", 4)
    assert ids(check) == [(0, "CMC", 2), (0, "CMC", 4), (1, "CMC", 2), (1, "CMC", 4)]
    assert check.records[0].note == "created, never logged, not pending"
    assert "not known exactly" not in check.detail


def test_pending_records_are_not_lost() -> None:
    records = [Served(0, i, START_NS + i * MS, None if i > 3 else START_NS + 9 * i * MS)
               for i in range(1, 7)]  # fmt: skip
    data = history_run(records)
    checks = by_name(data)
    assert checks["conservation"].status == "pass" and checks["conservation"].records == ()
    assert ids(checks["stranded"]) == [(0, "CMC", 4), (0, "CMC", 5), (0, "CMC", 6)]


def test_lost_records_when_pending_ids_were_cut_short() -> None:
    # Ids 1-10 stored; 1-4 logged; 5 lost; 6-10 pending, of which only 6-7 were read.
    records = [Served(0, i, START_NS + i * MS, START_NS + 20 * i * MS) for i in range(1, 5)]
    records += [Served(0, i, START_NS + i * MS, None) for i in range(5, 11)]
    data = history_run(records)
    counts = dataclasses.replace(
        data.firmware[0], pending=5, cleared=5, pending_ids=(6, 7), pending_ids_complete=False
    )
    cut = dataclasses.replace(data, firmware=[counts])
    check = by_name(cut)["conservation"]
    assert check.observed == 1 and ids(check) == [(0, "CMC", 5)]
    assert "not known exactly" not in check.detail  # 8-10 are the 3 pending not read
    # Now 9 is lost too, but which of 8-10 cannot be told from the counts.
    one_more = dataclasses.replace(counts, pending=4, cleared=6)
    check = by_name(dataclasses.replace(data, firmware=[one_more]))["conservation"]
    assert check.observed == 2 and ids(check) == [(0, "CMC", 5)]
    assert "1 of the 3 unlogged records after #7 are lost" in check.detail
    assert "1 of the 2 lost records named" in check.detail


def test_missing_events_are_said_and_unexpected_records_named() -> None:
    data = synthetic_run()
    firmware = [*data.firmware[:-1], dataclasses.replace(data.firmware[-1], created=6)]
    check = by_name(dataclasses.replace(data, firmware=firmware))["conservation"]
    assert check.status == "fail" and check.records == ()
    assert "ids not known exactly (pCPU 1 CMC: events show 5 of 6 stored records)" in check.detail
    ghost = LoggedRecord(0, 99, "CMC", "corrected", START_NS + MS, START_NS + 2 * MS)
    check = by_name(dataclasses.replace(data, log=[*data.log, ghost]))["conservation"]
    assert check.status == "fail"
    assert [(r.record_id, r.note) for r in check.records] == [(99, "logged, never created")]


def test_duplicates_are_named() -> None:
    data = synthetic_run()
    again = event(
        START_NS + 1900 * MS, "dom0", "record_committed", pcpu=1, type="CMC", record_id=3,
        duplicate=False,
    )  # fmt: skip
    doubled = dataclasses.replace(data, log=[*data.log, data.log[0]], events=[*data.events, again])
    check = by_name(doubled)["duplicates"]
    assert (check.status, check.observed) == ("fail", 2)
    assert ids(check) == [(0, "CMC", 1), (1, "CMC", 3)]
    assert check.records[0].note == "2 log rows"
    assert check.records[1].note == "committed as new 2 times"


def test_clears_before_logging_are_named() -> None:
    data = synthetic_run()
    row = data.log[3]
    early = event(
        row.logged_monotonic_ns - 2 * MS, "pcpu", "record_cleared", pcpu=row.pcpu, type="CMC",
        record_id=row.record_id, already_cleared=False,
    )  # fmt: skip
    never = event(
        START_NS + 1800 * MS, "pcpu", "record_cleared", pcpu=1, type="CMC", record_id=42,
        already_cleared=False,
    )  # fmt: skip
    events = sorted([*data.events, early, never], key=lambda e: e["t_mono_ns"])
    check = by_name(dataclasses.replace(data, events=events))["cleared_before_logged"]
    assert check.status == "fail"
    assert ids(check) == [(row.pcpu, "CMC", row.record_id), (1, "CMC", 42)]
    assert check.records[0].note == "cleared 2.0 ms before its commit"
    assert check.records[1].note == "cleared, never logged"


def test_latency_checks_name_the_slowest_records() -> None:
    data = synthetic_run()
    slow = [
        dataclasses.replace(r, logged_monotonic_ns=r.created_monotonic_ns + ms * MS)
        for r, ms in zip(data.log, (300, 120, 5, 5, 5, 5, 5, 5, 5, 5), strict=True)
    ]
    check = by_name(dataclasses.replace(data, log=slow))["latency_max"]
    assert check.status == "fail"
    assert [(r.record_id, r.note) for r in check.records] == [(1, "300.0 ms"), (2, "120.0 ms")]
    assert "2 slower than 100 ms, the slowest pCPU 0 CMC #1 (300.0 ms)" in check.detail


def test_unknown_checks_keep_their_records() -> None:
    data = synthetic_run()
    lossy = dataclasses.replace(data, log=data.log[1:], problems=["log: partly unreadable"])
    check = by_name(lossy)["conservation"]
    assert check.status == "unknown" and ids(check) == [(0, "CMC", 1)]
