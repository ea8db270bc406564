"""Real records in files and dumps: splitting and strict decoding with offsets, the dump
formats, `xenmca decode`, `xenmca log export --format raw|sal`, the replay plan, and a
scenario's `workload.records`.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from sal_samples import TIMESTAMP, mixed_raw, sample_raw, sample_record

from xenmca import cli
from xenmca.dom0.log_store import LogStore
from xenmca.layout.api import (
    RecordFormatError,
    RecordStreamError,
    UnknownSection,
    decode_record,
    decode_records,
    encode_record,
    format_record,
    record_to_proto,
    with_record_id,
)
from xenmca.ops import dumps
from xenmca.ops.record_files import RecordFileError, read_records, records_in_hex
from xenmca.ops.replay import plan_replay
from xenmca.testbed.run.workload_plan import plan_injections
from xenmca.testbed.scenario.errors import ScenarioError
from xenmca.testbed.scenario.loader import load_scenario, parse_scenario


def xenmca(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# --- records back to back ----------------------------------------------------------------


def test_records_back_to_back_split_by_their_len_fields() -> None:
    rng = random.Random(5)
    raws = [sample_raw(rng.randrange(10_000)) for _ in range(20)]
    data = b"".join(raws)
    found = decode_records(data)
    assert [f.raw for f in found] == raws
    offsets = [sum(len(r) for r in raws[:i]) for i in range(len(raws))]
    assert [f.offset for f in found] == offsets
    assert [f.record for f in found] == [decode_record(r) for r in raws]


@pytest.mark.parametrize(
    ("damage", "index", "offset", "problem"),
    [
        (lambda a, b: a + b[:30], 1, None, "truncated record header: need 40 bytes, got 30"),
        (lambda a, b: a + b[:-1], 1, 12, "record truncated: len field says"),
        (
            lambda a, b: a + _patched_u32(b, 12, 20),
            1,
            12,
            "len field 20 is smaller than the record",
        ),
        (lambda a, b: a + _patched(b, 60, 3), 1, 60, "section at offset 40: len 3 (offset 60)"),
        (lambda a, b: _patched(a, 10, 7) + b, 0, 10, "record severity 7 at offset 10"),
    ],
)
def test_a_bad_record_is_named_with_its_start_and_the_offset(
    damage, index: int, offset: int | None, problem: str
) -> None:
    first, second = sample_raw(1), mixed_raw()
    data = damage(first, second)
    with pytest.raises(RecordStreamError) as raised:
        decode_records(data)
    error = raised.value
    start = len(first) if index else 0
    assert (error.index, error.start) == (index, start)
    assert error.offset == (len(data) if offset is None else start + offset)
    assert problem in str(error) and str(error).startswith(f"record {index + 1} at byte {start}: ")
    assert isinstance(error, RecordFormatError)


def _patched(raw: bytes, at: int, value: int) -> bytes:
    data = bytearray(raw)
    data[at] = value
    return bytes(data)


def _patched_u32(raw: bytes, at: int, value: int) -> bytes:
    return raw[:at] + value.to_bytes(4, "little") + raw[at + 4 :]


def test_an_empty_buffer_holds_no_record() -> None:
    with pytest.raises(RecordStreamError, match="no SAL record"):
        decode_records(b"")


def test_with_record_id_changes_only_the_first_eight_bytes() -> None:
    raw = mixed_raw()
    numbered = with_record_id(raw, 0x0102030405060708)
    assert numbered[:8] == bytes([8, 7, 6, 5, 4, 3, 2, 1]) and numbered[8:] == raw[8:]
    assert decode_record(numbered).record_id == 0x0102030405060708


# --- record files -------------------------------------------------------------------------


def test_files_directories_stdin_and_hex(tmp_path: Path) -> None:
    one, two = sample_raw(1), mixed_raw()
    (tmp_path / "b.sal").write_bytes(two)
    (tmp_path / "a.sal").write_bytes(one + two)
    (tmp_path / ".skipped").write_bytes(b"junk")
    (tmp_path / "sub").mkdir()
    found = read_records(tmp_path)
    assert [(Path(f.source).name, f.index, f.offset) for f in found] == [
        ("a.sal", 0, 0),
        ("a.sal", 1, len(one)),
        ("b.sal", 0, 0),
    ]
    assert [f.raw for f in found] == [one, two, two]
    assert [f.raw for f in read_records("-", stdin=io.BytesIO(two + one))] == [two, one]
    spaced = " ".join(two.hex()[i : i + 32] for i in range(0, len(two) * 2, 32))
    assert [f.raw for f in records_in_hex(spaced)] == [two]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0g", "hex: 'g' at character 1 is not a hex digit"),
        ("abc", "hex: an odd number of hex digits (3)"),
        ("", "hex: record 1 at byte 0: no SAL record"),
    ],
)
def test_bad_hex_is_named(text: str, message: str) -> None:
    with pytest.raises(RecordFileError) as raised:
        records_in_hex(text)
    assert str(raised.value) == message or str(raised.value).startswith(message)


def test_an_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RecordFileError, match="holds no record files"):
        read_records(tmp_path)


# --- xenmca decode ------------------------------------------------------------------------


def test_decode_prints_each_record_as_log_show_does(tmp_path: Path, capsys) -> None:
    one, two = sample_raw(2), mixed_raw()
    path = tmp_path / "two.sal"
    path.write_bytes(one + two)
    code, out, _ = xenmca(capsys, "decode", str(path), "--raw")
    assert code == 0
    first, second = out.split(f"\n\nrecord 2 of {path} (byte {len(one)}, {len(two)} bytes)\n")
    assert first.startswith(f"record 1 of {path} (byte 0, {len(one)} bytes)\n")
    for text, raw in ((first, one), (second, two)):
        assert "decoded SAL record:\n" + format_record(decode_record(raw)) in text
        assert "raw SAL bytes:" in text
    assert "  severity:    fatal" in second
    assert (
        "  sections:    processor, platform_memory, pci_bus, platform_specific, unknown" in second
    )


def test_decode_uses_the_renderer_of_log_show(tmp_path: Path, capsys) -> None:
    """The decoded part of `decode` and of `log show` is the same text for the same bytes."""
    raw = mixed_raw()
    record = record_to_proto(decode_record(raw), pcpu=3, type_number=2, raw=raw)
    db = tmp_path / "dom0.sqlite"

    async def fill() -> None:
        async with await LogStore.open(db) as store:
            await store.commit(record)

    import asyncio

    asyncio.run(fill())
    (tmp_path / "r.sal").write_bytes(raw)
    _, shown, _ = xenmca(capsys, "log", "show", f"3:{record.record_id}", "--db", str(db))
    _, decoded, _ = xenmca(capsys, "decode", str(tmp_path / "r.sal"))
    tail = shown[shown.index("decoded SAL record:") :]
    assert decoded.endswith(tail)


def test_decode_json(tmp_path: Path, capsys) -> None:
    raw = mixed_raw()
    (tmp_path / "r.sal").write_bytes(raw)
    code, out, _ = xenmca(capsys, "decode", str(tmp_path / "r.sal"), "--json")
    assert code == 0
    (item,) = json.loads(out)
    record = decode_record(raw)
    assert item["record_id"] == record.record_id and item["severity"] == "fatal"
    assert item["raw_hex"] == raw.hex() and item["length"] == len(raw)
    assert item["timestamp"] == "2026-12-04T16:38:02+00:00"
    assert item["section_kinds"] == [
        "processor",
        "platform_memory",
        "pci_bus",
        "platform_specific",
        "unknown",
    ]
    unknown = record.sections[4]
    assert isinstance(unknown, UnknownSection)
    assert item["sections"][4]["unknown"]["body_hex"] == unknown.body.hex()
    assert item["sections"][0]["processor"]["cache_checks"]


def test_decode_hex_from_stdin(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(mixed_raw().hex() + "\n"))
    code, out, _ = xenmca(capsys, "decode", "--hex", "-")
    assert code == 0 and out.startswith("record 1 of - (byte 0, ")


def test_decode_bad_bytes_one_line_naming_file_and_offset(tmp_path: Path, capsys) -> None:
    raw = bytearray(sample_raw(3) + mixed_raw())
    start = len(sample_raw(3))
    raw[start + 60] = 3
    path = tmp_path / "bad.sal"
    path.write_bytes(bytes(raw))
    code, out, err = xenmca(capsys, "decode", str(path))
    assert code == 2 and out == ""
    assert one_line_error(err) == (
        f"xenmca decode: error: {path}: record 2 at byte {start}: section at offset 40: len 3 "
        f"(offset 60) is less than the 24-byte section header (byte {start + 60} of the input)"
    )


# --- log export --format raw / sal -------------------------------------------------------


async def _log(path: Path, records: list[tuple[int, int, int, bytes, int]]) -> None:
    """(pcpu, type number, record id, raw, created ns) into a dom0 log."""
    async with await LogStore.open(path) as store:
        for pcpu, sal_type, _record_id, raw, created_ns in records:
            message = record_to_proto(decode_record(raw), pcpu=pcpu, type_number=sal_type, raw=raw)
            message.created_at.FromNanoseconds(created_ns)
            await store.commit(message)


T0 = 1_764_000_000_000_000_000


@pytest.fixture
async def logged(tmp_path: Path) -> tuple[Path, list[bytes]]:
    raws = [
        sample_raw(seed, record_id=record_id, severity=seed % 3)
        for seed, record_id in ((1, 1), (2, 2), (3, 1))
    ]
    raws.append(encode_record(sample_record(4, record_id=3)))
    path = tmp_path / "dom0.sqlite"
    await _log(
        path,
        [
            (0, 2, 1, raws[0], T0),
            (0, 3, 2, raws[1], T0 + 500_000_000),
            (1, 2, 1, raws[2], T0 + 250_000_000),
            (0, 2, 3, raws[3], 0),  # created time unknown: the header's is used
        ],
    )
    return path, raws


def test_export_raw_writes_exact_bytes_that_read_back(logged, tmp_path: Path, capsys) -> None:
    db, raws = logged
    out = tmp_path / "dump.jsonl"
    code, _, err = xenmca(
        capsys, "log", "export", "--db", str(db), "--format", "raw", "--out", str(out)
    )
    assert code == 0 and f"exported 4 records to {out}" in err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == {
        "pcpu": 0,
        "type": "CMC",
        "record_id": 1,
        "severity": "fatal",
        "created_ns": T0,
        "raw_hex": raws[0].hex(),
    }
    assert "created_ns" not in lines[3]
    read = dumps.read_dump(out)
    assert [(r.pcpu, r.type, r.raw) for r in read] == [
        (0, "CMC", raws[0]),
        (1, "CMC", raws[2]),
        (0, "CPE", raws[1]),
        (0, "CMC", raws[3]),  # no created_ns: the header's timestamp, 2026, after T0 (2025)
    ]
    assert read[3].time_ns == int(TIMESTAMP.timestamp()) * 10**9


def test_export_sal_writes_one_file_per_record_that_read_back(logged, tmp_path, capsys) -> None:
    db, raws = logged
    folder = tmp_path / "sal"
    code, _, _ = xenmca(
        capsys, "log", "export", "--db", str(db), "--format", "sal", "--out", str(folder)
    )
    assert code == 0
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "pcpu0-cmc-00000000000000000001.sal",
        "pcpu0-cmc-00000000000000000003.sal",
        "pcpu0-cpe-00000000000000000002.sal",
        "pcpu1-cmc-00000000000000000001.sal",
    ]
    assert (folder / names[2]).read_bytes() == raws[1]
    read = dumps.read_dump(folder)
    # Whole seconds from the headers, all alike here: by header id, pCPU by pCPU.
    assert sorted((r.pcpu, r.record.record_id, r.type) for r in read) == [
        (0, 1, "CMC"),
        (0, 2, "CPE"),
        (0, 3, "CMC"),
        (1, 1, "CMC"),
    ]
    assert [r.record.record_id for r in read if r.pcpu == 0] == [1, 2, 3]
    code, _, err = xenmca(capsys, "log", "export", "--db", str(db), "--format", "sal")
    assert code == 2 and "give --out DIR" in one_line_error(err)


# --- dumps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{", "dump.jsonl:2: not JSON"),
        ("[1]", "dump.jsonl:2: expected a JSON object"),
        ('{"pcpu": 0}', "dump.jsonl:2: type, raw_hex missing"),
        ('{"pcpu": -1, "type": "cmc", "raw_hex": "RAW"}', "pcpu -1 is not an integer"),
        ('{"pcpu": 0, "type": "foo", "raw_hex": "RAW"}', "type 'foo' is not one of"),
        ('{"pcpu": 0, "type": "cmc", "raw_hex": "zz"}', "raw_hex is not a string of hex"),
        ('{"pcpu": 0, "type": "cmc", "raw_hex": "RAWRAW"}', "raw_hex holds 2 records"),
        (
            '{"pcpu": 0, "type": "cmc", "raw_hex": "BAD"}',
            "dump.jsonl:2: raw_hex: record 1 at byte 0: section at offset 40: len 3 (offset 60)",
        ),
        ('{"pcpu": 0, "type": "cmc", "raw_hex": "RAW", "created_ns": "x"}', "created_ns 'x'"),
    ],
)
def test_bad_dump_lines_are_named_with_their_line(tmp_path: Path, line: str, message: str) -> None:
    raw = mixed_raw()
    good = dumps.dump_line(
        pcpu=0, record_type="CMC", record_id=1, severity="fatal", created_ns=T0, raw=raw
    )
    bad = _patched(raw, 60, 3).hex()
    line = line.replace("RAWRAW", raw.hex() * 2).replace("RAW", raw.hex()).replace("BAD", bad)
    path = tmp_path / "dump.jsonl"
    path.write_text(f"{good}\n{line}\n\n")
    with pytest.raises(dumps.DumpError) as raised:
        dumps.read_dump(path)
    assert message in str(raised.value) and str(raised.value).startswith(f"{path}:2: ")


def test_directory_files_with_other_names_need_pcpu_and_type(tmp_path: Path) -> None:
    (tmp_path / "salinfo-0001").write_bytes(mixed_raw())
    with pytest.raises(dumps.DumpError, match="give --files-pcpu and --type"):
        dumps.read_dump(tmp_path)
    (record,) = dumps.read_dump(tmp_path, pcpu=2, record_type="cpe")
    assert (record.pcpu, record.type, record.raw) == (2, "CPE", mixed_raw())


# --- the replay plan ---------------------------------------------------------------------


def _dump_record(pcpu: int, record_id: int, seconds: float) -> dumps.DumpRecord:
    raw = sample_raw(record_id, record_id=record_id)
    return dumps.DumpRecord(
        pcpu=pcpu,
        type="CMC",
        raw=raw,
        record=decode_record(raw),
        time_ns=T0 + int(seconds * 1e9),
        where=f"r{record_id}",
    )


def test_replay_keeps_the_spacing_scaled_and_capped() -> None:
    records = [_dump_record(0, 1, 0), _dump_record(1, 2, 1.0), _dump_record(0, 3, 11.0)]
    assert [p.t_s for p in plan_replay(records)] == [0.0, 1.0, 11.0]
    assert [p.t_s for p in plan_replay(records, speed=2)] == [0.0, 0.5, 5.5]
    assert [p.t_s for p in plan_replay(records, speed=2, max_gap_s=1)] == [0.0, 0.5, 1.5]
    planned = plan_replay(records)
    assert [(p.pcpu, p.type, p.severity, p.raw) for p in planned] == [
        (r.pcpu, "cmc", r.severity, r.raw) for r in records
    ]


def test_replay_keeps_the_order_of_one_pcpus_records_at_the_same_instant() -> None:
    records = [_dump_record(0, i, 0) for i in (1, 2, 3)] + [_dump_record(1, 4, 0)]
    planned = plan_replay(records)
    assert [p.t_s for p in planned] == pytest.approx([0.0, 1e-6, 2e-6, 0.0])
    assert [p.raw for p in sorted(planned)] == [records[i].raw for i in (0, 3, 1, 2)]


# --- scenario workload.records ------------------------------------------------------------


SCENARIO = {
    "name": "raw",
    "seed": 1,
    "pcpus": 2,
    "duration_s": 5,
}


def _scenario(records: list[dict[str, object]], base_dir: Path | None = None):  # type: ignore[no-untyped-def]
    data = dict(SCENARIO, workload={"records": records})
    return parse_scenario(data, "raw.yaml", base_dir=base_dir)


def test_scenario_records_from_a_file_and_from_hex(tmp_path: Path) -> None:
    one, two = sample_raw(7, severity=0), mixed_raw()
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "two.sal").write_bytes(one + two)
    (tmp_path / "s.yaml").write_text(
        "name: raw\nseed: 1\npcpus: 2\nduration_s: 5\nworkload:\n  records:\n"
        "    - {pcpu: 1, at_s: 2.5, type: cpe, file: records/two.sal}\n"
        f"    - {{pcpu: 0, at_s: 1, type: cmc, hex: '{two.hex()}'}}\n"
    )
    scenario = load_scenario(tmp_path / "s.yaml")
    first, second = scenario.records
    assert (first.pcpu, first.at_s, first.type, first.source) == (1, 2.5, "cpe", "records/two.sal")
    assert first.raw_hex == (one.hex(), two.hex()) and second.raw_hex == (two.hex(),)
    plan = plan_injections(scenario)
    assert [(p.t_s, p.pcpu, p.type, p.severity, p.raw, p.source) for p in plan] == [
        (1.0, 0, "cmc", "fatal", two, "records[1]"),
        (2.5, 1, "cpe", "recoverable", one, "records[0]"),
        (2.5 + 1e-6, 1, "cpe", "fatal", two, "records[0]"),
    ]


@pytest.mark.parametrize(
    ("entry", "field", "message"),
    [
        (
            {"pcpu": 2, "at_s": 0, "type": "cmc", "hex": "00"},
            "workload.records[0].pcpu",
            "pCPU 2 does not exist",
        ),
        (
            {"pcpu": 0, "at_s": 5, "type": "cmc", "hex": "00"},
            "workload.records[0].at_s",
            "5 s is not before",
        ),
        (
            {"pcpu": 0, "at_s": 0, "type": "cmc"},
            "workload.records[0]",
            "give exactly one of file and hex",
        ),
        (
            {"pcpu": 0, "at_s": 0, "type": "cmc", "hex": "00", "file": "x"},
            "workload.records[0]",
            "give exactly one of file and hex",
        ),
        (
            {"pcpu": 0, "at_s": 0, "type": "cmc", "hex": "0"},
            "workload.records[0].hex",
            "an odd number",
        ),
        (
            {"pcpu": 0, "at_s": 0, "type": "cmc", "hex": "BAD"},
            "workload.records[0].hex",
            "record 1 at byte 0: section at offset 40: len 3 (offset 60)",
        ),
        (
            {"pcpu": 0, "at_s": 0, "type": "cmc", "file": "missing.sal"},
            "workload.records[0].file",
            "missing.sal: no such file or directory",
        ),
        ({"pcpu": 0, "at_s": 0, "type": "xyz", "hex": "00"}, "workload.records[0].type", ""),
        (
            {"pcpu": 0, "at_s": 0, "type": "cmc", "hex": "00", "when": 1},
            "workload.records[0].when",
            "unknown field",
        ),
    ],
)
def test_scenario_records_errors_name_the_field(
    tmp_path: Path, entry: dict[str, object], field: str, message: str
) -> None:
    if entry.get("hex") == "BAD":
        entry = dict(entry, hex=_patched(mixed_raw(), 60, 3).hex())
    with pytest.raises(ScenarioError) as raised:
        _scenario([entry], tmp_path)
    text = str(raised.value)
    assert text.startswith(f"raw.yaml: {field}: ") and message in text, text
    assert "\n" not in text
