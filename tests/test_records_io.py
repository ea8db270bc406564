"""Real records in files and dumps: splitting and strict decoding with offsets, record files,
the dump formats, the replay plan, and a scenario's `workload.records` (the commands
`xenmca decode` and `xenmca log export --format raw|sal` are in test_records_io_cli.py).
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from records_io_helpers import T0, _patched
from sal_samples import mixed_raw, sample_raw

from xenmca.layout.api import (
    RecordFormatError,
    RecordStreamError,
    decode_record,
    decode_records,
    with_record_id,
)
from xenmca.ops import dumps
from xenmca.ops.record_files import RecordFileError, read_records, records_in_hex
from xenmca.ops.replay import plan_replay
from xenmca.testbed.run.workload_plan import plan_injections
from xenmca.testbed.scenario.errors import ScenarioError
from xenmca.testbed.scenario.loader import load_scenario, parse_scenario

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
