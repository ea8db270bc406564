"""`xenmca log summary|list|show|export` over a log we fill, and `xenmca dom0`'s start-up errors."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from xenmca import cli
from xenmca.dom0.log_store import LogStore
from xenmca.layout import api
from xenmca.record.v1 import record_pb2

CMC = record_pb2.RECORD_TYPE_CMC
CPE = record_pb2.RECORD_TYPE_CPE


def make_record(pcpu: int, record_id: int, record_type: int = CMC) -> record_pb2.ErrorRecord:
    record = record_pb2.ErrorRecord(
        pcpu=pcpu,
        record_id=record_id,
        type=record_type,  # type: ignore[arg-type]
        severity=record_pb2.SEVERITY_CORRECTED,
        raw=b"\x00" * 8,  # not a SAL record: `show` falls back to the JSON sections
        created_monotonic_ns=time.monotonic_ns() - 2_000_000,
    )
    record.created_at.FromDatetime(datetime(2024, 5, 1, 12, 0, record_id, tzinfo=UTC))
    if record_type == CPE:
        record.sections.add(platform_memory=record_pb2.MemorySection(physical_addr=0xABC000))
    else:
        record.sections.add(processor=record_pb2.ProcessorSection(proc_cr_lid=pcpu))
    return record


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    """pCPU0: CMC 1-3; pCPU1: CMC 1 and CPE 2 (overflow); one duplicate of 0:1."""
    path = tmp_path / "dom0.sqlite"
    async with await LogStore.open(path) as store:
        for rid in (1, 2, 3):
            await store.commit(make_record(0, rid))
        await store.commit(make_record(1, 1))
        cpe = make_record(1, 2, CPE)
        cpe.overflow = True
        await store.commit(cpe)
        await store.commit(make_record(0, 1))
    return path


def xenmca(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_counts_per_pcpu_type_severity_and_duplicates(db: Path, capsys) -> None:
    code, out, _ = xenmca(capsys, "log", "summary", "--db", str(db))
    assert code == 0
    assert "Records per pCPU" in out and "Records per type and severity" in out
    per_pcpu = out.split("Records per pCPU")[1].split("Records per type")[0]
    pcpu_rows = [line.split() for line in per_pcpu.splitlines() if line.strip("│ ")[:1].isdigit()]
    assert [[c for c in row if c != "│"] for row in pcpu_rows] == [
        ["0", "3", "0", "3"],
        ["1", "1", "1", "2"],
    ]
    totals = {line.strip("│ ").rsplit("│", 1)[0].strip(): line for line in out.splitlines()}
    assert "5" in totals["records"]
    assert "1" in totals["duplicates dropped"]
    assert "1" in totals["records flagged overflow"]
    assert "corrected" in out and "CPE" in out


def test_list_one_line_per_record_with_filters(db: Path, capsys) -> None:
    code, out, _ = xenmca(capsys, "log", "list", "--db", str(db))
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:5] == ["LOG_ID", "PCPU", "RECORD_ID", "TYPE", "SEVERITY"]
    assert [line.split()[1:4] for line in lines[1:]] == [
        ["0", "1", "CMC"],
        ["0", "2", "CMC"],
        ["0", "3", "CMC"],
        ["1", "1", "CMC"],
        ["1", "2", "CPE"],
    ]
    assert "2024-05-01T12:00:01" in lines[1] and "processor" in lines[1]
    assert lines[5].endswith("platform_memory OVERFLOW")

    _, out, _ = xenmca(capsys, "log", "--db", str(db), "list", "--pcpu", "1", "--type", "cpe")
    assert [line.split()[1:4] for line in out.splitlines()[1:]] == [["1", "2", "CPE"]]
    _, out, _ = xenmca(capsys, "log", "list", "--db", str(db), "--limit", "2")
    assert [line.split()[1:3] for line in out.splitlines()[1:]] == [["1", "1"], ["1", "2"]]


def test_show_by_key_and_by_log_id(db: Path, capsys) -> None:
    code, out, _ = xenmca(capsys, "log", "show", "1:2", "--db", str(db), "--raw")
    assert code == 0
    assert out.startswith("record 1:2 (log id 5)")
    assert "type:        CPE" in out and "overflow:    yes" in out
    assert "sections (JSON):" in out and '"physical_addr"' in out
    assert "raw SAL bytes:" in out and "00 00 00 00" in out
    _, by_id, _ = xenmca(capsys, "log", "show", "5", "--db", str(db))
    assert by_id.startswith("record 1:2 (log id 5)")


async def test_show_prints_the_layout_decoding_of_real_sal_bytes(tmp_path: Path, capsys) -> None:
    sal = api.default_record_for_type(2, 42, datetime(2024, 5, 1, tzinfo=UTC), pcpu=3)
    record = api.record_to_proto(sal, pcpu=3, type_number=2)
    path = tmp_path / "real.sqlite"
    async with await LogStore.open(path) as store:
        await store.commit(record)
    code, out, _ = xenmca(capsys, "log", "show", "3:42", "--db", str(path))
    assert code == 0
    assert "decoded SAL record:" in out
    assert api.format_record(sal).strip().splitlines()[0] in out


def test_export_json_to_stdout(db: Path, capsys) -> None:
    code, out, _ = xenmca(capsys, "log", "export", "--db", str(db), "--format", "json")
    assert code == 0
    records = json.loads(out)
    assert [(r["pcpu"], r["record_id"], r["type"]) for r in records] == [
        (0, 1, "CMC"),
        (0, 2, "CMC"),
        (0, 3, "CMC"),
        (1, 1, "CMC"),
        (1, 2, "CPE"),
    ]
    assert records[4]["overflow"] is True
    assert records[4]["sections"][0]["platform_memory"]["physical_addr"] == str(0xABC000)
    assert records[0]["raw_hex"] == "00" * 8
    assert records[0]["latency_ms"] >= 2.0


def test_export_csv_to_a_file(db: Path, tmp_path: Path, capsys) -> None:
    out_file = tmp_path / "log.csv"
    code, out, err = xenmca(capsys, "log", "export", "--db", str(db), "--format", "csv",
                            "--out", str(out_file))  # fmt: skip
    assert code == 0 and out == ""
    assert err.strip() == f"exported 5 records to {out_file}"
    rows = list(csv.DictReader(io.StringIO(out_file.read_text())))
    assert [(r["pcpu"], r["record_id"], r["type"], r["severity"]) for r in rows][-1] == (
        "1",
        "2",
        "CPE",
        "corrected",
    )
    assert rows[-1]["overflow"] == "1" and rows[-1]["section_kinds"] == "platform_memory"
    sections = json.loads(rows[0]["sections"])
    assert sections[0]["processor"]["proc_cr_lid"] == "0"  # zero fields are kept


def test_empty_log_summary_and_export(tmp_path: Path, capsys) -> None:
    path = tmp_path / "empty.sqlite"
    with sqlite3.connect(path) as conn:
        from xenmca.dom0.log_schema import configure

        configure(conn)
    code, out, _ = xenmca(capsys, "log", "summary", "--db", str(path))
    assert code == 0 and "records" in out
    code, out, _ = xenmca(capsys, "log", "export", "--db", str(path))
    assert code == 0 and json.loads(out) == []


@pytest.mark.parametrize(
    "argv",
    [
        ("log", "summary", "--db", "{missing}"),
        ("log", "list", "--db", "{missing}"),
        ("log", "show", "0:1", "--db", "{missing}"),
        ("log", "export", "--db", "{missing}"),
        ("log", "summary"),
    ],
)
def test_missing_db_is_one_line_and_exit_2(tmp_path: Path, capsys, argv) -> None:
    missing = tmp_path / "nope.sqlite"
    code, out, err = xenmca(capsys, *(a.format(missing=missing) for a in argv))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("xenmca log: error:")
    assert not missing.exists()


@pytest.mark.parametrize("ref", ["9:9", "99", "x:1", "one"])
def test_unknown_or_malformed_record_is_one_line_and_exit_2(db: Path, capsys, ref) -> None:
    code, out, err = xenmca(capsys, "log", "show", ref, "--db", str(db))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and ref in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--xen", "no-port-here", "--db", "{tmp}/d.sqlite"), "--xen"),
        (("--xen", "127.0.0.1:1", "--db", "{tmp}/no/such/dir/d.sqlite"), "cannot open dom0 log"),
        (
            (
                "--xen",
                "127.0.0.1:1",
                "--db",
                "{tmp}/d.sqlite",
                "--cpe-poll-min",
                "5",
                "--cpe-poll-max",
                "1",
            ),
            "--cpe-poll-min",
        ),
        (
            ("--xen", "127.0.0.1:1", "--db", "{tmp}/d.sqlite", "--token-file", "{tmp}/none.yaml"),
            "token file",
        ),
    ],
)
def test_dom0_command_bad_setup_is_one_line_and_exit_2(
    tmp_path: Path, capsys, extra, message
) -> None:
    code, _, err = xenmca(capsys, "dom0", *(a.format(tmp=tmp_path) for a in extra))
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("xenmca dom0: error:")
    assert message in lines[0]
