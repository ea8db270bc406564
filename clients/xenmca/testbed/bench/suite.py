"""The `xenmca bench` run: which sections, with what sizes, in which order, into one result.

Sections: floors, skeleton (the bare flow of the same hops, interleaved with the
faithful one), hops (both traced once, hop by hop: where a record's time goes),
throughput (faithful), pipelined, latency (at half of the faithful throughput),
storm (isolation), scale. A section that needs another's figure pulls it in
(latency needs throughput; the flow sections need floors). A section that fails
is reported with its error and the run goes on.
"""

from __future__ import annotations

import statistics
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xenmca.testbed.bench.floor import floor_records_per_s, measure_floors
from xenmca.testbed.bench.flow import FlowShape, measure_latency, measure_throughput
from xenmca.testbed.bench.hops import measure_hops
from xenmca.testbed.bench.report import build_rows, machine_info
from xenmca.testbed.bench.scale import measure_scale
from xenmca.testbed.bench.skeleton import measure_interleaved
from xenmca.testbed.bench.storm import measure_storm_isolation

SECTIONS = (
    "floors", "skeleton", "hops", "throughput", "pipelined", "latency", "storm", "scale",
)  # fmt: skip
NEEDS = {
    "throughput": ("floors",),
    "pipelined": ("floors",),
    "latency": ("floors", "throughput"),
}


@dataclass(frozen=True)
class BenchSizes:
    """How big each section is: the full run, or --quick for CI."""

    rtt_calls: int
    commits: int
    flow: FlowShape
    latency_s: float
    storm_pcpus: int
    storm_s: float
    scale_pcpus: int
    scale_per_host: int
    idle_s: float


FULL = BenchSizes(
    rtt_calls=3000,
    commits=400,
    flow=FlowShape(pcpus=64, pcpus_per_host=32, records=3000),
    latency_s=15.0,
    storm_pcpus=16,
    storm_s=10.0,
    scale_pcpus=4096,
    scale_per_host=1024,
    idle_s=10.0,
)
QUICK = BenchSizes(
    rtt_calls=1000,
    commits=150,
    flow=FlowShape(pcpus=32, pcpus_per_host=16, records=600),
    latency_s=5.0,
    storm_pcpus=16,
    storm_s=4.0,
    scale_pcpus=512,
    scale_per_host=256,
    idle_s=5.0,
)


class UnknownSection(ValueError):
    """--only named a section that does not exist; the message lists the known ones."""


def resolve(only: Sequence[str] | None) -> list[str]:
    """The sections to run, in run order, with what they need."""
    if not only:
        return list(SECTIONS)
    unknown = [name for name in only if name not in SECTIONS]
    if unknown:
        raise UnknownSection(f"unknown section {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    wanted = set(only)
    for name in only:
        wanted.update(NEEDS.get(name, ()))
    return [name for name in SECTIONS if name in wanted]


Progress = Callable[[str, str], None]


FLOW_SECTIONS = ("throughput", "pipelined", "latency")
SKELETON_ROUNDS = 2
"""skeleton, faithful, skeleton, faithful."""
RESAMPLE_RTT_CALLS = 1000
RESAMPLE_COMMITS = 100


async def _floor_sample(where: Path, when: str, sizes: BenchSizes, first: bool) -> dict[str, Any]:
    """A floor measurement in the directory the next section's dom0 will keep its log in."""
    calls = sizes.rtt_calls if first else min(sizes.rtt_calls, RESAMPLE_RTT_CALLS)
    commits = sizes.commits if first else min(sizes.commits, RESAMPLE_COMMITS)
    sample = await measure_floors(where, rtt_calls=calls, commits=commits)
    sample["when"] = when
    return sample


def combine_floors(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's floors: the median over the samples taken before each flow section.

    This machine may be shared and noisy; one sample would make every ratio hostage
    to the load at one moment. Every sample is kept in the JSON.
    """
    rtt = statistics.median(s["rtt"]["p50_ms"] for s in samples)
    commit = statistics.median(s["commit"]["p50_ms"] for s in samples)
    return {
        "rtt_p50_ms": round(rtt, 4),
        "commit_p50_ms": round(commit, 4),
        "records_per_s": round(floor_records_per_s(rtt, commit), 1),
        "pipelined_ceiling_records_per_s": round(1000.0 / (2 * rtt + commit), 1),
        "formula": "1 / (4 x rtt_p50 + commit_p50), medians over the samples",
        "pipelined_ceiling_why": "in pipelined mode dom0 still makes its GET, its fsync'd "
        "commit and its CLEAR one after the other for each record of a type: at best "
        "2 round trips + 1 commit per record",
        "rtt": samples[0]["rtt"],
        "commit": samples[0]["commit"],
        "samples": [
            {
                "when": s["when"],
                "rtt_p50_ms": s["rtt"]["p50_ms"],
                "rtt_mean_ms": s["rtt"]["mean_ms"],
                "commit_p50_ms": s["commit"]["p50_ms"],
                "commit_mean_ms": s["commit"]["mean_ms"],
            }
            for s in samples
        ],
    }


async def _section(
    name: str, workdir: Path, sizes: BenchSizes, done: dict[str, Any]
) -> dict[str, Any]:
    where = workdir / name
    if name == "floors":
        # The commit floor is measured where the faithful flow's dom0 keeps its log.
        sample = await _floor_sample(workdir / "throughput", "start", sizes, first=True)
        done["floor_samples"] = [sample]
        return combine_floors(done["floor_samples"])
    if name in FLOW_SECTIONS:
        sample = await _floor_sample(where, f"before {name}", sizes, first=False)
        done["floor_samples"].append(sample)
    if name == "skeleton":
        return await measure_interleaved(where, sizes.flow, rounds=SKELETON_ROUNDS)
    if name == "hops":
        return await measure_hops(where, sizes.flow)
    if name == "throughput":
        return await measure_throughput(where, sizes.flow)
    if name == "pipelined":
        return await measure_throughput(where, sizes.flow, pipelined=True)
    if name == "latency":
        rate = 0.5 * float(done["throughput"]["records_per_s"])
        return await measure_latency(where, sizes.flow, rate, seconds=sizes.latency_s)
    if name == "storm":
        return await measure_storm_isolation(where, pcpus=sizes.storm_pcpus, seconds=sizes.storm_s)
    if name == "scale":
        return await measure_scale(
            where,
            pcpus=sizes.scale_pcpus,
            pcpus_per_host=sizes.scale_per_host,
            idle_seconds=sizes.idle_s,
        )
    raise UnknownSection(name)  # pragma: no cover - resolve() checked the names


async def run_bench(
    workdir: Path,
    *,
    quick: bool = False,
    only: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the selected sections; the JSON-ready result (machine, sections, rows)."""
    sizes = QUICK if quick else FULL
    selected = resolve(only)
    report = progress or (lambda _name, _what: None)
    started = time.monotonic()
    result: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "selected": selected,
        "machine": machine_info(),
    }
    sections: dict[str, Any] = {name: {"skipped": True} for name in SECTIONS}
    done: dict[str, Any] = {}
    for name in selected:
        missing = [need for need in NEEDS.get(name, ()) if need not in done]
        if missing:
            sections[name] = {"error": f"not run: {', '.join(missing)} failed"}
            report(name, "skipped")
            continue
        report(name, "running")
        section_started = time.monotonic()
        try:
            figures = await _section(name, workdir, sizes, done)
        except Exception as exc:  # one section's failure is reported; the others still run
            sections[name] = {
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=8),
            }
            report(name, f"failed: {type(exc).__name__}: {exc}")
            continue
        figures["section_s"] = round(time.monotonic() - section_started, 1)
        sections[name] = done[name] = figures
        report(name, f"done in {figures['section_s']} s")
    if "floors" in done:
        sections["floors"] = done["floors"] = {
            **combine_floors(done["floor_samples"]),
            "section_s": done["floors"]["section_s"],
        }
    result["sections"] = sections
    result["rows"] = [row.as_dict() for row in build_rows(done)]
    result["duration_s"] = round(time.monotonic() - started, 1)
    result["machine"]["load_average_end"] = machine_info()["load_average"]
    return result
