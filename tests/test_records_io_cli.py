"""Real records through the command line: `xenmca decode` (text, JSON, hex from stdin, bad
bytes) and `xenmca log export --format raw|sal`, whose files read back exactly."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from records_io_helpers import T0, one_line_error, xenmca
from sal_samples import TIMESTAMP, mixed_raw, sample_raw, sample_record

from xenmca.dom0.log_store import LogStore
from xenmca.layout.api import (
    UnknownSection,
    decode_record,
    encode_record,
    format_record,
    record_to_proto,
)
from xenmca.ops import dumps

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
