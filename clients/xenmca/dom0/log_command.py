"""`xenmca log summary|list|show|export`: read dom0's durable log, like ras-mc-ctl.

`export --format raw` (JSON lines) and `--format sal` (a directory of record files)
write the dumps `xenmca replay` reads back (xenmca.ops.dumps).

The log is opened read-only: these commands never create or change it, and
they can run while `xenmca dom0` is writing (WAL readers do not block it).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

from rich.console import Console

from xenmca.dom0 import log_queries, log_render
from xenmca.dom0.log_queries import LogUnavailable
from xenmca.dom0.log_schema import LoggedRecord
from xenmca.rpc.usage import UsageError

EXPORT_FORMATS = ("json", "csv", "raw", "sal")


class LogCommandError(Exception):
    """A problem to report in one line with exit status 2."""


def _add_db(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--db", type=Path, metavar="PATH", default=default, help="dom0's SQLite log"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_db(parser, None)
    actions = parser.add_subparsers(dest="log_action", required=True, metavar="ACTION")

    summary = actions.add_parser("summary", help="counts per pCPU, type and severity")
    _add_db(summary, argparse.SUPPRESS)

    listing = actions.add_parser("list", help="one line per record")
    _add_db(listing, argparse.SUPPRESS)
    listing.add_argument("--pcpu", type=int, help="only records of this pCPU")
    listing.add_argument("--type", dest="record_type", metavar="TYPE", help="only cmc, cpe, ...")
    listing.add_argument("--limit", type=int, metavar="N", help="only the N most recently logged")

    show = actions.add_parser("show", help="one record decoded in full")
    _add_db(show, argparse.SUPPRESS)
    show.add_argument("record", metavar="PCPU:RECORD_ID|LOG_ID", help="which record")
    show.add_argument("--raw", action="store_true", help="also dump the raw SAL bytes")

    export = actions.add_parser(
        "export", help="every record as JSON, CSV, or a raw dump that `xenmca replay` reads"
    )
    _add_db(export, argparse.SUPPRESS)
    export.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default="json",
        help="json (an array), csv, raw (JSON lines: each record's exact bytes, pCPU, type "
        "and creation time) or sal (one raw SAL record file per record, in --out DIR)",
    )
    export.add_argument(
        "--out",
        type=Path,
        metavar="FILE|DIR",
        help="write here (default stdout); a directory for --format sal",
    )


def parse_record_ref(text: str) -> tuple[int, int] | int:
    """PCPU:RECORD_ID as a pair, or a bare LOG_ID as an int."""
    try:
        if ":" in text:
            pcpu, record_id = text.split(":", 1)
            return int(pcpu), int(record_id)
        return int(text)
    except ValueError:
        raise LogCommandError(f"{text!r} is neither PCPU:RECORD_ID nor a log id") from None


def _find(conn: sqlite3.Connection, text: str) -> LoggedRecord:
    ref = parse_record_ref(text)
    if isinstance(ref, tuple):
        record = log_queries.get_record(conn, *ref)
    else:
        record = log_queries.get_by_log_id(conn, ref)
    if record is None:
        raise LogCommandError(f"no record {text} in the log")
    return record


def _summary(conn: sqlite3.Connection, console: Console) -> None:
    log_render.print_summary(console, log_queries.counts(conn), log_queries.stats(conn))


def _list(conn: sqlite3.Connection, args: argparse.Namespace) -> None:
    if args.limit is not None and args.limit < 0:
        raise LogCommandError("--limit must be 0 or more")
    records = log_queries.list_records(
        conn, pcpu=args.pcpu, record_type=args.record_type, limit=args.limit
    )
    print(log_render.LIST_HEADER)
    for record in records:
        print(log_render.list_line(record))


def _export_sal(conn: sqlite3.Connection, directory: Path | None) -> None:
    if directory is None:
        raise LogCommandError("--format sal writes one file per record: give --out DIR")
    if directory.exists() and not directory.is_dir():
        raise LogCommandError(f"--format sal needs a directory; {directory} is a file")
    try:
        count = log_render.write_sal_files(log_queries.iter_records(conn), directory)
    except OSError as exc:
        raise LogCommandError(f"cannot write {directory}: {exc.strerror or exc}") from exc
    print(f"exported {count} records to {directory}", file=sys.stderr)


def _export(conn: sqlite3.Connection, args: argparse.Namespace) -> None:
    if args.format == "sal":
        _export_sal(conn, args.out)
        return
    writer = {
        "json": log_render.write_json,
        "csv": log_render.write_csv,
        "raw": log_render.write_raw,
    }[args.format]
    records = log_queries.iter_records(conn)
    if args.out is None:
        writer(records, sys.stdout)
        return
    try:
        with open(args.out, "w", encoding="utf-8", newline="") as out:
            count = writer(records, out)
    except OSError as exc:
        raise LogCommandError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    print(f"exported {count} records to {args.out}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    try:
        if args.db is None:
            raise LogCommandError("--db PATH is required")
        with closing(log_queries.open_reader(args.db)) as conn:
            if args.log_action == "summary":
                _summary(conn, Console())
            elif args.log_action == "list":
                _list(conn, args)
            elif args.log_action == "show":
                print(log_render.show_text(_find(conn, args.record), raw=args.raw))
            else:
                _export(conn, args)
    except (LogUnavailable, LogCommandError) as exc:
        raise UsageError(str(exc)) from exc
    except sqlite3.Error as exc:
        raise UsageError(f"reading {args.db}: {exc}") from exc
    return 0
