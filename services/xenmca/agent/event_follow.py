"""Following a JSON-lines events file, like `tail -F`: complete lines only, across restarts.

Each run of a child appends to the same events file, so following it across
restarts is reading on. A file that is replaced (another inode) or truncated
is read again from its start; a file that does not exist yet is waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

POLL_S = 0.05
READ_CHUNK = 1 << 20


@dataclass
class Position:
    """Where a follower is in the file: the start of its first unread line."""

    inode: int | None
    offset: int
    pending: bytes = b""
    skip_first: bool = False
    """The offset is inside a line (the file's end was mid-write): drop up to its newline."""


def _identity(path: Path) -> tuple[int, int] | None:
    """(inode, size) of path, None when it does not exist."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(READ_CHUNK)
    except FileNotFoundError:
        return b""


def start_position(path: Path, from_start: bool) -> Position:
    """Where to start reading: the file's start, or its current end (then the rest of a
    line being written there is not a line of its own)."""
    found = _identity(path)
    if found is None:
        return Position(None, 0)
    inode, size = found
    if from_start or size == 0:
        return Position(inode, 0)
    return Position(inode, size, skip_first=_read_from(path, size - 1)[:1] != b"\n")


def _new_lines(path: Path, position: Position) -> list[tuple[int, str]]:
    """The complete lines written since position (with their offsets); advances position."""
    found = _identity(path)
    if found is None:
        return []
    inode, size = found
    if inode != position.inode or size < position.offset + len(position.pending):
        position.inode, position.offset, position.pending = inode, 0, b""
        position.skip_first = False
    read_at = position.offset + len(position.pending)
    if size <= read_at:
        return []
    data = position.pending + _read_from(path, read_at)
    lines: list[tuple[int, str]] = []
    start = 0
    while (end := data.find(b"\n", start)) != -1:
        text = data[start:end].decode("utf-8", "replace").strip()
        if position.skip_first:
            position.skip_first = False
        elif text:
            lines.append((position.offset + start, text))
        start = end + 1
    position.offset += start
    position.pending = data[start:]
    return lines


def offset_position(path: Path, offset: int) -> Position:
    """Reading from a byte offset: from the first line that starts there or after it."""
    found = _identity(path)
    if found is None:
        return Position(None, 0)
    inside_line = offset > 0 and _read_from(path, offset - 1)[:1] != b"\n"
    return Position(found[0], offset, skip_first=inside_line)


def end_of_file(path: Path) -> int:
    """The events file's size now (0 when it does not exist yet)."""
    found = _identity(path)
    return 0 if found is None else found[1]


async def follow_lines(
    path: Path,
    position: Position,
    stop: asyncio.Event | None = None,
    poll: float = POLL_S,
    until: int | None = None,
) -> AsyncIterator[tuple[int, str]]:
    """Yield (offset, line) for each complete line of path from position, forever (or until
    stop is set); with `until`, return once every line that ends by that offset is out."""
    while stop is None or not stop.is_set():
        if until is not None and position.offset + len(position.pending) >= until:
            return  # every byte up to `until` read: its lines are out, a torn one held back
        lines = _new_lines(path, position)
        for offset, text in lines:
            if until is not None and offset >= until:
                return
            yield offset, text
        if not lines:
            if stop is None:
                await asyncio.sleep(poll)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll)
