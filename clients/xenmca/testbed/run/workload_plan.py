"""The workload's plan: a scenario's streams, storms, bursts and real records as InjectError
calls at planned times, the same for the same seed (see xenmca.testbed.run.workload).
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from xenmca.layout.codec import decode_record
from xenmca.layout.record import SEVERITY_NAMES
from xenmca.record.v1 import record_pb2
from xenmca.testbed.scenario.model import RawRecords, Scenario, SeverityMix, Stream
from xenmca.testbed.scenario.workload_fields import storm_count

SEVERITY_VALUES: dict[str, int] = {
    "recoverable": record_pb2.SEVERITY_RECOVERABLE,
    "fatal": record_pb2.SEVERITY_FATAL,
    "corrected": record_pb2.SEVERITY_CORRECTED,
}
SEVERITY_ORDER = ("corrected", "recoverable", "fatal")


@dataclass(frozen=True, order=True)
class PlannedInjection:
    """One InjectError: at t_s seconds after the start, on pcpu, count records of type.

    rate 0: all count records at once (a stream arrival or a burst); rate > 0: a
    storm the pCPU host paces itself at rate records/s. raw: a real SAL record's
    bytes to store (InjectErrorRequest.raw_record; severity is its header's), or
    empty for generated records.
    """

    t_s: float
    pcpu: int
    type: str  # "cmc" | "cpe" | "mca" | "init"
    severity: str  # "corrected" | "recoverable" | "fatal"
    count: int = 1
    rate: float = 0.0
    source: str = field(default="", compare=False)  # "streams[0]", "storms[1]", "bursts[2]"
    raw: bytes = field(default=b"", compare=False, repr=False)


# -- the plan ----------------------------------------------------------------------------


def derived_seed(seed: int, *parts: object) -> int:
    """A 64-bit seed from the scenario seed and a label, the same on every run and machine."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _stream_end(stream: Stream, duration_s: float) -> float:
    if stream.duration_s is None:
        return duration_s
    return min(duration_s, stream.start_s + stream.duration_s)


def _weights(mix: SeverityMix) -> list[float]:
    return [mix.corrected, mix.recoverable, mix.fatal]


def stream_arrivals(
    stream: Stream, index: int, pcpu: int, seed: int, duration_s: float
) -> list[PlannedInjection]:
    """The Poisson arrivals of one stream on one pCPU (exponential inter-arrival times)."""
    if stream.rate <= 0:
        return []
    rng = random.Random(derived_seed(seed, "stream", index, pcpu))
    end = _stream_end(stream, duration_s)
    weights = _weights(stream.severity)
    single = [name for name, w in zip(SEVERITY_ORDER, weights, strict=True) if w > 0]
    source = f"streams[{index}]"
    arrivals: list[PlannedInjection] = []
    t = stream.start_s
    while True:
        t += rng.expovariate(stream.rate)
        if t >= end:
            return arrivals
        severity = (
            single[0] if len(single) == 1 else rng.choices(SEVERITY_ORDER, weights=weights)[0]
        )
        arrivals.append(PlannedInjection(t, pcpu, stream.type, severity, 1, 0.0, source))


def plan_injections(scenario: Scenario) -> list[PlannedInjection]:
    """Every InjectError of the scenario, sorted by time (then pCPU); deterministic in the seed."""
    plan: list[PlannedInjection] = []
    for index, stream in enumerate(scenario.streams):
        for pcpu in stream.pcpus:
            plan.extend(stream_arrivals(stream, index, pcpu, scenario.seed, scenario.duration_s))
    for index, storm in enumerate(scenario.storms):
        count = storm_count(storm)
        for pcpu in storm.pcpus:
            plan.append(
                PlannedInjection(
                    storm.start_s,
                    pcpu,
                    storm.type,
                    storm.severity,
                    count,
                    storm.rate,
                    f"storms[{index}]",
                )
            )
    for index, burst in enumerate(scenario.bursts):
        for pcpu in burst.pcpus:
            plan.append(
                PlannedInjection(
                    burst.at_s,
                    pcpu,
                    burst.type,
                    burst.severity,
                    burst.count,
                    0.0,
                    f"bursts[{index}]",
                )
            )
    for index, given in enumerate(scenario.records):
        plan.extend(raw_record_injections(given, f"records[{index}]"))
    plan.sort()
    return plan


RAW_RECORD_STEP_S = 1e-6
"""Records of one workload.records entry are planned this far apart, in file order:
the plan is sorted by time, then pCPU, type and severity, and those would reorder
records planned for the same instant."""


def raw_record_injections(given: RawRecords, source: str) -> list[PlannedInjection]:
    """One injection per record of a workload.records entry, in its order."""
    injections = []
    for position, text in enumerate(given.raw_hex):
        raw = bytes.fromhex(text)
        severity = SEVERITY_NAMES[decode_record(raw).severity]
        injections.append(
            PlannedInjection(
                given.at_s + position * RAW_RECORD_STEP_S,
                given.pcpu,
                given.type,
                severity,
                1,
                0.0,
                source,
                raw,
            )
        )
    return injections


def planned_records(plan: Iterable[PlannedInjection]) -> dict[str, int]:
    """Records the plan asks for, per type (lower-case names) and "total"."""
    counts: dict[str, int] = defaultdict(int)
    for injection in plan:
        counts[injection.type] += injection.count
        counts["total"] += injection.count
    return dict(counts)


# -- the driver --------------------------------------------------------------------------
