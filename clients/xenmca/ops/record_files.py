"""Real SAL records from files: one or more records back to back in a file, a directory
of such files, standard input, or hex text; every record decoded strictly.

`xenmca inject --record`, `xenmca decode`, `xenmca replay` (a directory dump) and a
scenario's `workload.records` read records through here. A file holds records back to
back, each as long as its header's len field says (one record, as Linux's salinfo
saves it, or several concatenated with `cat`). A directory means its regular files
whose names do not start with a dot, in name order; subdirectories are not read.
Every problem is a RecordFileError whose text is one line naming the file, the
record and the byte where the problem lies.
"""

from __future__ import annotations

import string
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from xenmca.layout.raw import RecordStreamError, decode_records
from xenmca.layout.record import SalRecord

STDIN = "-"
"""The file name that means standard input."""


class RecordFileError(ValueError):
    """Records that cannot be read or decoded; str() is one line naming the file."""


@dataclass(frozen=True)
class RecordInFile:
    """One record as found: where it came from, its exact bytes and its decoding."""

    source: str
    """The file it was read from ("-" for standard input, "hex" for hex text)."""
    index: int
    """Its position in that file, from 0."""
    offset: int
    """The byte of the file where it starts."""
    raw: bytes
    record: SalRecord

    @property
    def where(self) -> str:
        """``FILE`` for a file's only record, else ``FILE record N (byte B)``."""
        if self.index == 0 and self.offset == 0:
            return self.source
        return f"{self.source} record {self.index + 1} (byte {self.offset})"


def _named(source: str, message: str) -> RecordFileError:
    return RecordFileError(f"{source}: {message}" if source else message)


def records_in_bytes(data: bytes, source: str) -> list[RecordInFile]:
    """Every record in ``data``, read from ``source``; RecordFileError naming it otherwise
    (``source`` "" leaves the name out, for callers that name the origin themselves)."""
    try:
        found = decode_records(data)
    except RecordStreamError as exc:
        raise _named(source, str(exc)) from None
    return [RecordInFile(source, f.index, f.offset, f.raw, f.record) for f in found]


def records_in_hex(text: str, source: str = "hex") -> list[RecordInFile]:
    """The records in hex text (whitespace ignored, as `xxd -p` or raw_hex gives them)."""
    digits = "".join(text.split())
    bad = next((i for i, c in enumerate(digits) if c not in string.hexdigits), None)
    if bad is not None:
        raise _named(source, f"{digits[bad]!r} at character {bad} is not a hex digit")
    if len(digits) % 2:
        raise _named(source, f"an odd number of hex digits ({len(digits)})")
    return records_in_bytes(bytes.fromhex(digits), source)


def record_file_names(directory: Path) -> list[Path]:
    """The files of a directory that hold records: regular, not hidden, in name order."""
    try:
        entries = sorted(directory.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise RecordFileError(f"{directory}: cannot list: {exc.strerror or exc}") from None
    return [p for p in entries if not p.name.startswith(".") and p.is_file()]


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RecordFileError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_record_file(path: Path) -> list[RecordInFile]:
    """Every record in one file (at least one)."""
    return records_in_bytes(_read_bytes(path), str(path))


def read_records(source: str | Path, stdin: BinaryIO | None = None) -> list[RecordInFile]:
    """Every record of a file, of each file of a directory, or of standard input ("-")."""
    if str(source) == STDIN:
        stream = stdin if stdin is not None else sys.stdin.buffer
        return records_in_bytes(stream.read(), STDIN)
    path = Path(source)
    if path.is_dir():
        files = record_file_names(path)
        if not files:
            raise RecordFileError(f"{path}: the directory holds no record files")
        return [record for file in files for record in read_record_file(file)]
    if not path.exists():
        raise RecordFileError(f"{path}: no such file or directory")
    return read_record_file(path)


def describe(records: Iterable[RecordInFile]) -> str:
    """``N records from FILE`` or ``N records from M files``, for one-line reports."""
    listed = list(records)
    sources = sorted({r.source for r in listed})
    noun = "record" if len(listed) == 1 else "records"
    origin = sources[0] if len(sources) == 1 else f"{len(sources)} files"
    return f"{len(listed)} {noun} from {origin}"
