"""The hop trace: CLOCK_MONOTONIC stamps at the points a record passes on dom0's serial path.

Off unless ``XENMCA_HOP_TRACE`` names a directory when the process starts. Then
each ``mark(point)`` appends (nanoseconds, point) to a list in memory (about a
third of a microsecond) and the process writes them to
``DIR/hops-<pid>.txt`` when it exits, after a SIGTERM too. CLOCK_MONOTONIC is
shared by the processes of one machine, so the stamps of dom0, the coordinator
and the pCPU hosts order into one timeline: `xenmca bench` (section ``hops``,
xenmca.testbed.bench.hops) reads them to show where a record's time goes, hop by
hop, beside the bare skeleton's, which marks the same points.

Points are named ``<process>.<step>``: ``dom0.get.send``, ``xen.get.in``,
``xen.ipi.get.send``, ``pcpu.get.in`` ... (see the bench module for the list).
"""

from __future__ import annotations

import atexit
import os
import time
from pathlib import Path

HOP_TRACE_ENV = "XENMCA_HOP_TRACE"
MAX_MARKS = 4_000_000
"""At most this many stamps per process (about 300 MiB less than unbounded): a trace
left on by mistake in a long run stops growing instead of eating the host."""

_directory = os.environ.get(HOP_TRACE_ENV) or None
_marks: list[tuple[int, str]] | None = [] if _directory else None


def mark(point: str) -> None:
    """Stamp point now (nothing when the trace is off)."""
    if _marks is not None and len(_marks) < MAX_MARKS:
        _marks.append((time.monotonic_ns(), point))


def flush() -> Path | None:
    """Write the stamps so far to DIR/hops-<pid>.txt (atomically); the file, or None."""
    if _marks is None or _directory is None or not _marks:
        return None
    directory = Path(_directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"hops-{os.getpid()}.txt"
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="ascii") as out:
        out.writelines(f"{stamp} {point}\n" for stamp, point in _marks)
    os.replace(temporary, path)
    return path


if _marks is not None:
    atexit.register(flush)
