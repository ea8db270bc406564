"""Record dumps: what `xenmca log export --format raw|sal` writes and `xenmca replay` reads.

Two forms, each carrying every record's bytes exactly:

* **JSON lines** (``--format raw``, a file or standard input): one record per line,
  ``{"pcpu":3,"type":"CMC","record_id":42,"severity":"corrected",
  "created_ns":1764000000123456789,"raw_hex":"2a00..."}``. ``raw_hex`` is the record's
  exact bytes; ``created_ns`` is when the firmware created it (its wall clock, ns
  since the Unix epoch), the time replay spaces records by. ``record_id`` and
  ``severity`` repeat what the bytes hold, for people and jq. A reader needs
  ``pcpu``, ``type`` and ``raw_hex``; without ``created_ns`` it takes the header's
  timestamp. Blank lines are skipped; other keys are ignored.
* **A directory of SAL record files** (``--format sal``): one record per file named
  ``pcpu<P>-<type>-<record id, 20 digits>.sal`` (``pcpu3-cmc-00000000000000000042.sal``),
  the bytes alone, as `xenmca decode` and `xenmca inject --record` read them. The
  pCPU and type come from the name (a reader may give them for other names, such as
  a directory of salinfo's raw records), the time from the header's timestamp, which
  SAL keeps in whole seconds. A file may hold several records back to back.

Records of one pCPU with the same time keep the order of their header ids (the
firmware numbers its records in creation order).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from xenmca.layout.raw import RecordStreamError, iter_records
from xenmca.layout.record import SEVERITY_NAMES, SalRecord
from xenmca.ops.record_files import STDIN, RecordFileError, read_record_file, record_file_names

RECORD_TYPES = ("MCA", "INIT", "CMC", "CPE")
"""Record type names as the log spells them (SAL types 0-3)."""
MAX_PCPU = 65535
SAL_FILE = re.compile(r"pcpu(\d+)-(mca|init|cmc|cpe)-(\d+)", re.IGNORECASE)
"""How a --format sal file name starts: pcpu<P>-<type>-<record id>."""


class DumpError(ValueError):
    """A dump that cannot be read; str() is one line naming the file (and line)."""


@dataclass(frozen=True)
class DumpRecord:
    """One record of a dump: the pCPU and log it belongs to, its bytes, and its time."""

    pcpu: int
    type: str
    """MCA, INIT, CMC or CPE."""
    raw: bytes
    record: SalRecord
    time_ns: int
    """created_ns, or the header's timestamp when the dump has none."""
    where: str
    """``FILE:LINE`` or the record's file, for messages."""

    @property
    def severity(self) -> str:
        return SEVERITY_NAMES[self.record.severity]


def sal_file_name(pcpu: int, record_type: str, record_id: int) -> str:
    """The --format sal file name of a record."""
    return f"pcpu{pcpu}-{record_type.lower()}-{record_id:020d}.sal"


def dump_line(
    *,
    pcpu: int,
    record_type: str,
    record_id: int,
    severity: str,
    created_ns: int | None,
    raw: bytes,
) -> str:
    """One JSON line of a --format raw dump (without the newline); created_ns None or 0
    (not known) is left out, and readers take the header's timestamp."""
    item: dict[str, Any] = {
        "pcpu": pcpu,
        "type": record_type,
        "record_id": record_id,
        "severity": severity,
    }
    if created_ns:
        item["created_ns"] = created_ns
    item["raw_hex"] = raw.hex()
    return json.dumps(item, separators=(",", ":"))


def _header_ns(record: SalRecord) -> int:
    return int(record.timestamp.timestamp()) * 1_000_000_000


def _record_type(value: Any, where: str) -> str:
    if not isinstance(value, str) or value.upper() not in RECORD_TYPES:
        raise DumpError(f"{where}: type {value!r} is not one of mca, init, cmc, cpe")
    return value.upper()


def _pcpu(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PCPU:
        raise DumpError(f"{where}: pcpu {value!r} is not an integer 0-{MAX_PCPU}")
    return value


def _one_record(data: bytes, where: str) -> SalRecord:
    try:
        found = list(iter_records(data))
    except RecordStreamError as exc:
        raise DumpError(f"{where}: raw_hex: {exc}") from None
    if len(found) != 1:
        raise DumpError(f"{where}: raw_hex holds {len(found)} records; one per line")
    return found[0].record


def parse_line(text: str, where: str) -> DumpRecord:
    """One JSON line of a --format raw dump."""
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DumpError(f"{where}: not JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(item, dict):
        raise DumpError(f"{where}: expected a JSON object, one record per line")
    missing = [key for key in ("pcpu", "type", "raw_hex") if key not in item]
    if missing:
        raise DumpError(f"{where}: {', '.join(missing)} missing")
    hex_text = item["raw_hex"]
    try:
        raw = bytes.fromhex(hex_text) if isinstance(hex_text, str) else None
    except ValueError:
        raw = None
    if raw is None:
        raise DumpError(f"{where}: raw_hex is not a string of hex digits")
    record = _one_record(raw, where)
    created = item.get("created_ns")
    if created is not None and (isinstance(created, bool) or not isinstance(created, int)):
        raise DumpError(f"{where}: created_ns {created!r} is not an integer")
    return DumpRecord(
        pcpu=_pcpu(item["pcpu"], where),
        type=_record_type(item["type"], where),
        raw=raw,
        record=record,
        time_ns=created if created is not None else _header_ns(record),
        where=where,
    )


def read_lines(lines: TextIO, name: str) -> list[DumpRecord]:
    """Every record of a JSON-lines dump."""
    records = []
    for number, text in enumerate(lines, 1):
        if text.strip():
            records.append(parse_line(text, f"{name}:{number}"))
    return records


def _sal_files(directory: Path, pcpu: int | None, record_type: str | None) -> Iterator[DumpRecord]:
    files = record_file_names(directory)
    if not files:
        raise DumpError(f"{directory}: the directory holds no record files")
    for path in files:
        named = SAL_FILE.match(path.name)
        file_pcpu = int(named.group(1)) if named else pcpu
        file_type = named.group(2).upper() if named else record_type
        if file_pcpu is None or file_type is None:
            raise DumpError(
                f"{path}: the name does not say the pCPU and type (pcpu<P>-<type>-<id>.sal); "
                "give --files-pcpu and --type"
            )
        try:
            found = read_record_file(path)
        except RecordFileError as exc:
            raise DumpError(str(exc)) from None
        for item in found:
            yield DumpRecord(
                pcpu=_pcpu(file_pcpu, str(path)),
                type=file_type,
                raw=item.raw,
                record=item.record,
                time_ns=_header_ns(item.record),
                where=item.where,
            )


def read_dump(
    source: str | Path, *, pcpu: int | None = None, record_type: str | None = None
) -> list[DumpRecord]:
    """The records of a dump (a JSON-lines file, "-" for standard input, or a directory
    of SAL record files) in replay order: by time, and by header id within a time.

    ``pcpu`` and ``record_type`` name the pCPU and type of directory files whose names
    do not. DumpError on any problem, and on a dump with no record.
    """
    if record_type is not None:
        record_type = _record_type(record_type, "--type")
    if str(source) == STDIN:
        records = read_lines(sys.stdin, STDIN)
    else:
        path = Path(source)
        if path.is_dir():
            records = list(_sal_files(path, pcpu, record_type))
        else:
            try:
                with open(path, encoding="utf-8") as lines:
                    records = read_lines(lines, str(path))
            except UnicodeDecodeError:
                raise DumpError(
                    f"{path}: not a JSON-lines dump (binary SAL records go in a directory, "
                    "or to `xenmca inject --record`)"
                ) from None
            except OSError as exc:
                raise DumpError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not records:
        raise DumpError(f"{source}: the dump holds no record")
    return sorted(records, key=lambda r: (r.time_ns, r.record.record_id))
