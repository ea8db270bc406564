"""A scenario's `workload` section: each entry checked against the scenario and converted,
with the limits on how many records a scenario may ask for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xenmca.pcpu.model import (
    MAX_INJECTION_SECONDS,
    MIN_INJECT_RATE,
    paced_seconds,
    paced_too_long,
)
from xenmca.testbed.scenario.errors import ScenarioError, field_path, number_text
from xenmca.testbed.scenario.model import (
    Burst,
    RawRecords,
    SeverityMix,
    Storm,
    Stream,
)

MAX_RECORDS_PER_ENTRY = 10_000_000
"""Most records one stream or storm may ask for (all its pCPUs together)."""
MAX_RECORDS_TOTAL = 10_000_000
"""Most records the whole workload may ask for."""
MAX_STORM_COUNT_PER_PCPU = 1_000_000
"""Most records one storm may create on one pCPU (one paced InjectError)."""
SEVERITY_NAMES = ("corrected", "recoverable", "fatal")


def parse_pcpu_set(value: Any, pcpus: int) -> tuple[int, ...]:
    """Resolve "all", an index, a list or "0-3,6" to sorted distinct indices < pcpus.

    Raises ValueError with a message (no field) on an index out of range, a
    reversed range or a repeated index.
    """
    if value == "all":
        return tuple(range(pcpus))
    indices: list[int] = []
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a pCPU set")
    if isinstance(value, int):
        indices = [value]
    elif isinstance(value, str):
        for part in value.split(","):
            low, _, high = part.strip().partition("-")
            first = int(low)
            last = int(high) if high else first
            if last < first:
                raise ValueError(f"range {part.strip()!r} runs backwards")
            indices.extend(range(first, last + 1))
    elif isinstance(value, Sequence):
        indices = [int(v) for v in value]
    else:
        raise ValueError(f"{value!r} is not a pCPU set")
    seen: set[int] = set()
    for index in indices:
        if index >= pcpus:
            raise ValueError(f"pCPU {index} does not exist (pcpus is {pcpus}: 0-{pcpus - 1})")
        if index in seen:
            raise ValueError(f"pCPU {index} is listed more than once")
        seen.add(index)
    return tuple(sorted(seen))


class WorkloadFields:
    """Checks and converts a scenario's `workload`: streams, storms, bursts and real records."""

    def __init__(self, file: str, pcpus: int, duration: float, base_dir: Path | None) -> None:
        self.file = file
        self.pcpus = pcpus
        self.duration = duration
        self.base_dir = base_dir

    def fail(self, path: Sequence[str | int], message: str) -> ScenarioError:
        return ScenarioError(self.file, field_path(path), message)

    def build(
        self, workload: Mapping[str, Any]
    ) -> tuple[tuple[Stream, ...], tuple[Storm, ...], tuple[Burst, ...], tuple[RawRecords, ...]]:
        """Every entry of the workload, and a check of how many records they ask for in all."""
        streams = tuple(self.stream(i, s) for i, s in enumerate(workload.get("streams", [])))
        storms = tuple(self.storm(i, s) for i, s in enumerate(workload.get("storms", [])))
        bursts = tuple(self.burst(i, b) for i, b in enumerate(workload.get("bursts", [])))
        records = tuple(self.raw_records(i, r) for i, r in enumerate(workload.get("records", [])))
        total = (
            sum(_stream_records(s, self.duration) for s in streams)
            + sum(storm_count(s) * len(s.pcpus) for s in storms)
            + sum(b.count * len(b.pcpus) for b in bursts)
            + sum(len(r.raw_hex) for r in records)
        )
        if total > MAX_RECORDS_TOTAL:
            raise self.fail(
                ["workload"],
                f"asks for about {total:,.0f} records in all; at most {MAX_RECORDS_TOTAL:,}",
            )
        return streams, storms, bursts, records

    def pcpu_set(self, path: list[str | int], value: Any) -> tuple[int, ...]:
        try:
            return parse_pcpu_set(value, self.pcpus)
        except ValueError as exc:
            raise self.fail(path, str(exc)) from None

    def window(self, path: list[str | int], start: float, duration: float | None) -> None:
        if start >= self.duration:
            raise self.fail(
                [*path, "start_s"],
                f"starts at {number_text(start)} s, not before the end of the workload "
                f"(duration_s {number_text(self.duration)})",
            )
        if duration is not None and start + duration > self.duration + 1e-9:
            raise self.fail(
                [*path, "duration_s"],
                f"ends at {number_text(start + duration)} s, after the end of the workload "
                f"(duration_s {number_text(self.duration)})",
            )

    def stream(self, index: int, raw: Mapping[str, Any]) -> Stream:
        path: list[str | int] = ["workload", "streams", index]
        pcpus = self.pcpu_set([*path, "pcpus"], raw.get("pcpus", "all"))
        severity = raw.get("severity", "corrected")
        if isinstance(severity, str):
            mix = SeverityMix(**{name: float(name == severity) for name in SEVERITY_NAMES})
        else:
            mix = SeverityMix(**{name: float(severity.get(name, 0.0)) for name in SEVERITY_NAMES})
            if mix.corrected + mix.recoverable + mix.fatal <= 0:
                raise self.fail([*path, "severity"], "the weights must have a positive sum")
        start = float(raw.get("start_s", 0.0))
        duration = raw.get("duration_s")
        duration = None if duration is None else float(duration)
        self.window(path, start, duration)
        stream = Stream(
            type=raw["type"],
            rate=float(raw["rate"]),
            pcpus=pcpus,
            severity=mix,
            start_s=start,
            duration_s=duration,
        )
        records = _stream_records(stream, self.duration)
        if records > MAX_RECORDS_PER_ENTRY:
            raise self.fail(
                [*path, "rate"],
                f"asks for about {records:,.0f} records (rate * duration * "
                f"{len(pcpus)} pCPUs); at most {MAX_RECORDS_PER_ENTRY:,}",
            )
        return stream

    def storm(self, index: int, raw: Mapping[str, Any]) -> Storm:
        path: list[str | int] = ["workload", "storms", index]
        pcpus = self.pcpu_set([*path, "pcpus"], raw["pcpus"])
        start = float(raw.get("start_s", 0.0))
        duration = float(raw["duration_s"])
        self.window(path, start, duration)
        storm = Storm(
            type=raw["type"],
            pcpus=pcpus,
            rate=float(raw["rate"]),
            start_s=start,
            duration_s=duration,
            severity=raw.get("severity", "corrected"),
        )
        # The pCPU's own limits on a paced injection, so that no storm passes here
        # and is refused at run time.
        if storm.rate < MIN_INJECT_RATE:
            raise self.fail(
                [*path, "rate"],
                f"{number_text(storm.rate)} records/s is too slow for a paced injection; at least "
                f"{number_text(MIN_INJECT_RATE)} (use a burst for a few records)",
            )
        count = storm_count(storm)
        if paced_too_long(count, storm.rate):
            raise self.fail(
                [*path, "rate"],
                f"{count:,} records at {number_text(storm.rate)}/s take "
                f"{paced_seconds(count, storm.rate):,.0f} s; one paced injection lasts at most "
                f"{MAX_INJECTION_SECONDS:,.0f} s",
            )
        if count > MAX_STORM_COUNT_PER_PCPU:
            raise self.fail(
                [*path, "rate"],
                f"rate * duration_s is {count:,} records per pCPU; at most "
                f"{MAX_STORM_COUNT_PER_PCPU:,} (one paced injection)",
            )
        if count * len(pcpus) > MAX_RECORDS_PER_ENTRY:
            raise self.fail(
                [*path, "pcpus"],
                f"{count:,} records on each of {len(pcpus)} pCPUs is "
                f"{count * len(pcpus):,}; at most {MAX_RECORDS_PER_ENTRY:,}",
            )
        return storm

    def burst(self, index: int, raw: Mapping[str, Any]) -> Burst:
        path: list[str | int] = ["workload", "bursts", index]
        pcpus = self.pcpu_set([*path, "pcpus"], raw["pcpus"])
        at = float(raw["at_s"])
        if at >= self.duration:
            raise self.fail(
                [*path, "at_s"],
                f"{number_text(at)} s is not before the end of the workload "
                f"(duration_s {number_text(self.duration)})",
            )
        count = int(raw["count"])
        if count * len(pcpus) > MAX_RECORDS_PER_ENTRY:
            raise self.fail(
                [*path, "pcpus"],
                f"{count:,} records on each of {len(pcpus)} pCPUs is "
                f"{count * len(pcpus):,}; at most {MAX_RECORDS_PER_ENTRY:,}",
            )
        return Burst(
            type=raw["type"],
            pcpus=pcpus,
            count=count,
            at_s=at,
            severity=raw.get("severity", "corrected"),
        )

    def raw_records(self, index: int, raw: Mapping[str, Any]) -> RawRecords:
        """Real records from a file (relative to the scenario's folder) or hex, decoded
        strictly now, so that bad bytes stop the scenario before it runs."""
        from xenmca.ops.record_files import RecordFileError, read_records, records_in_hex

        path: list[str | int] = ["workload", "records", index]
        pcpu, at = int(raw["pcpu"]), float(raw["at_s"])
        if pcpu >= self.pcpus:
            raise self.fail(
                [*path, "pcpu"],
                f"pCPU {pcpu} does not exist (pcpus is {self.pcpus}: 0-{self.pcpus - 1})",
            )
        if at >= self.duration:
            raise self.fail(
                [*path, "at_s"],
                f"{number_text(at)} s is not before the end of the workload "
                f"(duration_s {number_text(self.duration)})",
            )
        given = [key for key in ("file", "hex") if key in raw]
        if len(given) != 1:
            raise self.fail(path, "give exactly one of file and hex (the record's bytes)")
        key = given[0]
        try:
            if key == "file":
                name = Path(raw["file"])
                found = read_records(name if self.base_dir is None else self.base_dir / name)
            else:
                found = records_in_hex(raw["hex"], source="")
        except RecordFileError as exc:
            raise self.fail([*path, key], str(exc)) from None
        if len(found) > MAX_RECORDS_PER_ENTRY:
            raise self.fail(
                [*path, key], f"holds {len(found):,} records; at most {MAX_RECORDS_PER_ENTRY:,}"
            )
        return RawRecords(
            pcpu=pcpu,
            at_s=at,
            type=raw["type"],
            raw_hex=tuple(r.raw.hex() for r in found),
            source=str(raw["file"]) if key == "file" else "hex",
        )


def storm_count(storm: Storm) -> int:
    """Records a storm creates on each of its pCPUs: rate * duration_s, at least 1."""
    return max(1, round(storm.rate * storm.duration_s))


def _stream_records(stream: Stream, scenario_duration: float) -> float:
    """Expected records of a stream over all its pCPUs."""
    end = stream.start_s + stream.duration_s if stream.duration_s is not None else scenario_duration
    value = stream.rate * max(0.0, end - stream.start_s) * len(stream.pcpus)
    return value if math.isfinite(value) else math.inf
