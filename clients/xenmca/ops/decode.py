"""`xenmca decode FILE|-`: print raw SAL records as `xenmca log show` prints a logged one.

FILE holds one or more records back to back, or is a directory of such files, or "-"
for standard input (`--hex` when it holds hex digits, as `raw_hex` or `xxd -p` give
them). Every record is decoded strictly before anything is printed: bad bytes print
one line naming the file, the record and the byte of the problem, and exit 2, like
salinfo_decode refusing a record. `--json` prints a JSON array, one object per record,
whose sections have the shape of `xenmca log export --format json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from xenmca.layout.sections import UnknownSection
from xenmca.ops.record_files import (
    STDIN,
    RecordFileError,
    RecordInFile,
    read_records,
    records_in_hex,
)
from xenmca.rpc.usage import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        metavar="FILE|-",
        help="raw SAL records back to back, a directory of such files, or - for stdin",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON array of the records")
    parser.add_argument("--raw", action="store_true", help="also dump each record's bytes in hex")
    parser.add_argument(
        "--hex", action="store_true", help="FILE holds hex digits (whitespace ignored), not bytes"
    )


def _read(args: argparse.Namespace) -> list[RecordInFile]:
    if not args.hex:
        return read_records(args.file)
    if args.file == STDIN:
        return records_in_hex(sys.stdin.read(), STDIN)
    try:
        with open(args.file, encoding="ascii") as text:
            return records_in_hex(text.read(), args.file)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RecordFileError(f"{args.file}: cannot read hex: {reason}") from None


def _section_dict(section: Any) -> dict[str, Any]:
    """One section as the log stores it (the proto's JSON), or its raw body when unknown."""
    from google.protobuf import json_format

    from xenmca.layout.proto_convert import section_to_proto

    if isinstance(section, UnknownSection):
        major, minor = section.revision
        return {
            "error_recovery_info": section.error_recovery_info,
            "unknown": {
                "guid": str(section.guid),
                "revision": f"{major}.{minor:02d}",
                "body_hex": section.body.hex(),
            },
        }
    return json_format.MessageToDict(
        section_to_proto(section),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


def record_dict(found: RecordInFile) -> dict[str, Any]:
    """A record as plain JSON values."""
    from xenmca.layout.record import SEVERITY_NAMES

    record = found.record
    major, minor = record.revision
    sections = [_section_dict(s) for s in record.sections]
    return {
        "source": found.source,
        "index": found.index,
        "offset": found.offset,
        "length": len(found.raw),
        "record_id": record.record_id,
        "revision": f"{major}.{minor:02d}",
        "severity": SEVERITY_NAMES[record.severity],
        "timestamp": record.timestamp.isoformat(),
        "platform_guid": None if record.platform_guid is None else str(record.platform_guid),
        "section_kinds": [next(k for k in s if k != "error_recovery_info") for s in sections],
        "sections": sections,
        "raw_hex": found.raw.hex(),
    }


def record_text(found: RecordInFile, *, raw: bool = False) -> str:
    """One record in full, laid out as `xenmca log show` lays out a logged record."""
    from xenmca.dom0.log_render import record_body_lines
    from xenmca.layout.record import SEVERITY_NAMES

    record = found.record
    kinds = record_dict(found)["section_kinds"]
    lines = [
        f"record {found.index + 1} of {found.source} (byte {found.offset}, {len(found.raw)} bytes)",
        f"  record id:   {record.record_id}",
        f"  severity:    {SEVERITY_NAMES[record.severity]}",
        f"  timestamp:   {record.timestamp:%Y-%m-%d %H:%M:%S} UTC",
        f"  raw size:    {len(found.raw)} bytes",
        f"  sections:    {', '.join(kinds) or '-'}",
        "",
    ]
    lines += record_body_lines(found.raw, raw=raw)
    return "\n".join(lines)


def _dump_hint(args: argparse.Namespace) -> str:
    """A pointer to the right tool when FILE looks like a JSON-lines dump, not bytes."""
    path = Path(args.file)
    if args.hex or not path.is_file():
        return ""
    try:
        with open(path, "rb") as handle:
            start = handle.read(1)
    except OSError:
        return ""
    if start != b"{":
        return ""
    return " (a JSON-lines dump? `xenmca replay` reads it; decode one raw_hex with --hex)"


def run(args: argparse.Namespace) -> int:
    try:
        records = _read(args)
    except RecordFileError as exc:
        raise UsageError(f"{exc}{_dump_hint(args)}") from exc
    if args.json:
        print(json.dumps([record_dict(found) for found in records], indent=2))
    else:
        print("\n\n".join(record_text(found, raw=args.raw) for found in records))
    return 0
