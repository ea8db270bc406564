"""Shared by the record I/O tests (test_records_io*.py): running the CLI in process, its
one-line error, patching bytes of a record, and the base timestamp of logged records."""

from __future__ import annotations

import pytest

from xenmca import cli


def xenmca(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _patched(raw: bytes, at: int, value: int) -> bytes:
    data = bytearray(raw)
    data[at] = value
    return bytes(data)


T0 = 1_764_000_000_000_000_000
