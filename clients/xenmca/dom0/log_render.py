"""Printing dom0's log for people and tools: summary tables, listings, one record, exports
(JSON, CSV, and the raw dumps `xenmca replay` reads)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.table import Table

from xenmca.dom0.log_queries import LogCounts, LogStats
from xenmca.dom0.log_schema import LoggedRecord
from xenmca.layout.api import RecordFormatError, decode_record, format_record

TYPE_ORDER = ("MCA", "INIT", "CMC", "CPE")
SEVERITY_ORDER = ("recoverable", "fatal", "corrected")
CSV_COLUMNS = (
    "log_id",
    "pcpu",
    "record_id",
    "type",
    "severity",
    "created_at",
    "created_monotonic_ns",
    "logged_at",
    "logged_monotonic_ns",
    "latency_ms",
    "overflow",
    "section_kinds",
    "sections",
    "raw_hex",
)


def _ordered(present: Iterable[str], preferred: tuple[str, ...]) -> list[str]:
    names = set(present)
    return [n for n in preferred if n in names] + sorted(names - set(preferred))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} ms"


def print_summary(console: Console, counts: LogCounts, stats: LogStats) -> None:
    """Counts per pCPU (by type), per type (by severity), then the totals."""
    types = _ordered(counts.by_type, TYPE_ORDER)
    per_pcpu = Table(title="Records per pCPU", min_width=20)
    per_pcpu.add_column("pCPU", justify="right")
    for name in types:
        per_pcpu.add_column(name, justify="right")
    per_pcpu.add_column("total", justify="right", style="bold")
    for pcpu in sorted(counts.by_pcpu):
        cells = [str(counts.by_pcpu_type.get((pcpu, name), 0)) for name in types]
        per_pcpu.add_row(str(pcpu), *cells, str(counts.by_pcpu[pcpu]))

    severities = _ordered(counts.by_severity, SEVERITY_ORDER)
    per_type = Table(title="Records per type and severity", min_width=33)
    per_type.add_column("type")
    for severity in severities:
        per_type.add_column(severity, justify="right")
    per_type.add_column("total", justify="right", style="bold")
    for name in types:
        cells = [str(counts.by_type_severity.get((name, s), 0)) for s in severities]
        per_type.add_row(name, *cells, str(counts.by_type[name]))

    totals = Table(title="Totals", show_header=False)
    totals.add_column("what")
    totals.add_column("value", justify="right")
    totals.add_row("records", str(counts.total))
    totals.add_row("pCPUs", str(len(counts.by_pcpu)))
    totals.add_row("duplicates dropped", str(stats.duplicates_dropped))
    totals.add_row("records flagged overflow", str(counts.overflow))
    latency = stats.latency
    totals.add_row("created→logged p50", _ms(latency.p50_ms))
    totals.add_row("created→logged p99", _ms(latency.p99_ms))
    totals.add_row("created→logged max", _ms(latency.max_ms))

    if counts.total:
        console.print(per_pcpu)
        console.print(per_type)
    console.print(totals)


LIST_HEADER = (
    f"{'LOG_ID':>7} {'PCPU':>5} {'RECORD_ID':>10} {'TYPE':<4} {'SEVERITY':<11} "
    f"{'CREATED':<32} {'LOGGED':<32} SECTIONS"
)


def list_line(record: LoggedRecord) -> str:
    """One record on one line, aligned under LIST_HEADER."""
    return (
        f"{record.log_id:>7} {record.pcpu:>5} {record.record_id:>10} {record.type:<4} "
        f"{record.severity:<11} {record.created_at or '-':<32} {record.logged_at:<32} "
        f"{','.join(record.section_kinds) or '-'}"
        f"{' OVERFLOW' if record.overflow else ''}"
    )


def layout_text(raw: bytes) -> str | None:
    """The layout module's human print of raw SAL bytes; None if they do not decode.

    The only place the dom0 client depends on the layout module.
    """
    if not raw:
        return None
    try:
        return format_record(decode_record(raw))
    except RecordFormatError:  # bytes that are no SAL record: `log show` prints JSON sections
        return None


def hex_dump(raw: bytes, width: int = 16) -> str:
    lines = []
    for offset in range(0, len(raw), width):
        chunk = raw[offset : offset + width]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {chunk.hex(' '):<{width * 3 - 1}}  {text}")
    return "\n".join(lines)


def record_body_lines(raw_bytes: bytes, *, raw: bool = False, sections: object = None) -> list[str]:
    """The record decoded (the layout's print; the JSON ``sections`` when it cannot be
    decoded), then with ``raw`` its bytes in hex: the part of `log show` that
    `xenmca decode` prints too."""
    lines: list[str] = []
    decoded = layout_text(raw_bytes)
    if decoded is not None:
        lines += ["decoded SAL record:", decoded.rstrip("\n")]
    else:
        lines += ["sections (JSON):", json.dumps(sections, indent=2)]
    if raw:
        lines += ["", "raw SAL bytes:", hex_dump(raw_bytes)]
    return lines


def show_text(record: LoggedRecord, *, raw: bool = False) -> str:
    """One record in full: the log's fields, then the record decoded."""
    latency = record.latency_ms
    lines = [
        f"record {record.key} (log id {record.log_id})",
        f"  pCPU:        {record.pcpu}",
        f"  record id:   {record.record_id}",
        f"  type:        {record.type}",
        f"  severity:    {record.severity}",
        f"  created:     {record.created_at or '-'}",
        f"  logged:      {record.logged_at}",
        f"  latency:     {'-' if latency is None else f'{latency:.3f} ms'} (created→logged)",
        f"  overflow:    {'yes' if record.overflow else 'no'}",
        f"  raw size:    {len(record.raw)} bytes",
        f"  sections:    {', '.join(record.section_kinds) or '-'}",
        "",
    ]
    lines += record_body_lines(record.raw, raw=raw, sections=record.sections)
    return "\n".join(lines)


def write_json(records: Iterable[LoggedRecord], out: IO[str]) -> int:
    """A JSON array of every record (raw as hex); returns how many were written."""
    count = 0
    out.write("[")
    for record in records:
        out.write(",\n  " if count else "\n  ")
        out.write(json.dumps(record.to_dict(), separators=(",", ":")))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def write_raw(records: Iterable[LoggedRecord], out: IO[str]) -> int:
    """JSON lines that `xenmca replay` reads: each record's exact bytes, pCPU, type and
    creation time (xenmca.ops.dumps); how many were written."""
    from xenmca.ops.dumps import dump_line

    count = 0
    for record in records:
        line = dump_line(
            pcpu=record.pcpu,
            record_type=record.type,
            record_id=record.record_id,
            severity=record.severity,
            created_ns=record.created_wall_ns,
            raw=record.raw,
        )
        out.write(line + "\n")
        count += 1
    return count


def write_sal_files(records: Iterable[LoggedRecord], directory: Path) -> int:
    """One file of raw SAL bytes per record in ``directory`` (xenmca.ops.dumps names them);
    how many were written."""
    from xenmca.ops.dumps import sal_file_name

    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for record in records:
        path = directory / sal_file_name(record.pcpu, record.type, record.record_id)
        path.write_bytes(record.raw)
        count += 1
    return count


def write_csv(records: Iterable[LoggedRecord], out: IO[str]) -> int:
    """One CSV row per record (sections as JSON text, kinds ';'-joined); how many were written."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for record in records:
        row = record.to_dict()
        row["section_kinds"] = ";".join(record.section_kinds)
        row["sections"] = json.dumps(record.sections, separators=(",", ":"))
        row["overflow"] = int(record.overflow)
        writer.writerow({key: row[key] for key in CSV_COLUMNS})
        count += 1
    return count
