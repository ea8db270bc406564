"""The `hops` bench section: where a record's time goes on dom0's serial path, hop by hop.

The skeleton and the faithful flow each run once with the hop trace on
(xenmca.rpc.hop_trace): every process stamps the same points (dom0.get.send,
xen.get.in, xen.ipi.get.send, pcpu.get.in, ...) on CLOCK_MONOTONIC, which all
processes of a machine share. The stamps of all processes, in time order, cut
the run into segments; each segment goes to one of:

- ``transit``: from a point in one process to a point in another (gRPC's work in
  both, the kernel's loopback, and the wake-ups), e.g. dom0.get.send -> xen.get.in;
- ``commit``: dom0.commit.start -> dom0.commit.end (the fsync'd transaction);
- ``dom0``, ``xen``, ``pcpu``: inside one process, between two of its points (its
  own work: checks, events, records, queues, and gRPC's on that side).

Per record is the segments' total over the steady window (from the 20 % point of
the run to its last CLEAR reply) divided by the records dom0 started there, so
the categories add up to the mean time between records. The same figures for
the skeleton show what is xenmca's own and what any Python gRPC flow of the same
hops pays.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import statistics
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from xenmca.rpc.hop_trace import HOP_TRACE_ENV
from xenmca.testbed.bench.flow import FlowShape, measure_throughput
from xenmca.testbed.bench.rows import Row, figure, ratio
from xenmca.testbed.bench.skeleton import measure_skeleton, record_size

CATEGORIES = ("transit", "commit", "dom0", "xen", "pcpu")
WARM_UP = 0.2
"""The share of the run's records left out at its start (start-up, the interrupt burst)."""
TOP_SEGMENTS = 24


@contextlib.contextmanager
def tracing(directory: Path) -> Iterator[None]:
    """Processes started inside the block write their hop trace into directory."""
    directory.mkdir(parents=True, exist_ok=True)
    saved = os.environ.get(HOP_TRACE_ENV)
    os.environ[HOP_TRACE_ENV] = str(directory)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(HOP_TRACE_ENV, None)
        else:
            os.environ[HOP_TRACE_ENV] = saved


def read_marks(directory: Path) -> list[tuple[int, str]]:
    """Every stamp of every process in directory, in time order."""
    marks: list[tuple[int, str]] = []
    for path in directory.glob("hops-*.txt"):
        for line in path.read_text(encoding="ascii").splitlines():
            stamp, _, point = line.partition(" ")
            marks.append((int(stamp), point))
    marks.sort()
    return marks


def category(start: str, end: str) -> str:
    """Which category the segment start -> end belongs to (see the module docstring)."""
    process, other = start.split(".", 1)[0], end.split(".", 1)[0]
    if process != other:
        return "transit"
    if (start, end) == ("dom0.commit.start", "dom0.commit.end"):
        return "commit"
    return process


def analyse(marks: list[tuple[int, str]], warm_up: float = WARM_UP) -> dict[str, Any]:
    """Per-record time by category and the largest segments, over the steady window."""
    starts = [stamp for stamp, point in marks if point == "dom0.get.send"]
    ends = [stamp for stamp, point in marks if point == "dom0.clear.reply"]
    if len(starts) < 10 or not ends:
        raise ValueError(f"too few traced records ({len(starts)}) to analyse")
    first = starts[int(len(starts) * warm_up)]
    last = ends[-1]
    window = [(stamp, point) for stamp, point in marks if first <= stamp <= last]
    records = sum(1 for _, point in window if point == "dom0.get.send")
    gaps: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (a_stamp, a_point), (b_stamp, b_point) in itertools.pairwise(window):
        gaps[(a_point, b_point)].append((b_stamp - a_stamp) / 1000)
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for (start, end), values in gaps.items():
        totals[category(start, end)] += sum(values)
    segments = sorted(gaps.items(), key=lambda item: -sum(item[1]))[:TOP_SEGMENTS]
    return {
        "records": records,
        "per_record_us": {name: round(total / records, 1) for name, total in totals.items()},
        "cycle_us": round((last - first) / 1000 / records, 1),
        "segments": [
            {
                "from": start,
                "to": end,
                "category": category(start, end),
                "count": len(values),
                "median_us": round(statistics.median(values), 1),
                "per_record_us": round(sum(values) / records, 1),
            }
            for (start, end), values in segments
        ],
    }


async def measure_hops(workdir: Path, shape: FlowShape) -> dict[str, Any]:
    """The skeleton, then the faithful flow, each traced; both analyses."""
    skeleton_dir, faithful_dir = workdir / "trace-skeleton", workdir / "trace-faithful"
    for directory in (skeleton_dir, faithful_dir):
        for stale in directory.glob("hops-*.txt"):
            stale.unlink()
    with tracing(skeleton_dir):
        await measure_skeleton(workdir / "skeleton", shape.records, record_size())
    with tracing(faithful_dir):
        await measure_throughput(workdir / "faithful", shape)
    return {
        "warm_up": WARM_UP,
        "skeleton": analyse(read_marks(skeleton_dir)),
        "faithful": analyse(read_marks(faithful_dir)),
    }


_LABELS: Mapping[str, str] = {
    "transit": "gRPC transit between processes",
    "commit": "dom0's durable commit",
    "dom0": "inside dom0",
    "xen": "inside the coordinator",
    "pcpu": "inside the pCPU host",
}


def rows(sections: Mapping[str, Any]) -> list[Row]:
    """Per record on the serial path, by category: faithful against skeleton (same run)."""
    hops = sections.get("hops")
    faithful = figure(hops, "faithful", "per_record_us") or {}
    skeleton = figure(hops, "skeleton", "per_record_us") or {}
    result = [
        Row("hops", "per record on the serial path (trace)", "us",
            figure(hops, "faithful", "cycle_us"), "",
            ratio(figure(hops, "faithful", "cycle_us"), figure(hops, "skeleton", "cycle_us")),
            None, f"skeleton {figure(hops, 'skeleton', 'cycle_us')} us"),
    ]  # fmt: skip
    for name in CATEGORIES:
        # A ratio only where the skeleton does the same work: it has no logic of its own.
        shared = name in ("transit", "commit")
        result.append(
            Row("hops", f"  {_LABELS[name]}", "us", faithful.get(name), "",
                ratio(faithful.get(name), skeleton.get(name)) if shared else None,
                None, f"skeleton {skeleton.get(name)} us")
        )  # fmt: skip
    return result
