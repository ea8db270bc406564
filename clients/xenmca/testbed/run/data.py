"""Everything a run collects, handed to the checkers, the results writer, the plots and the report.

Times are CLOCK_MONOTONIC nanoseconds (shared by every process on the machine);
`RunData.seconds(t_ns)` turns one into seconds since the run started.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xenmca.testbed.scenario.model import Scenario


@dataclass(frozen=True)
class FirmwareCounts:
    """One pCPU's store of one type at the end of the run (from DescribePcpu)."""

    pcpu: int
    type: str  # "CMC", "CPE", "MCA", "INIT"
    created: int  # stored + overflowed
    pending: int
    cleared: int
    overflowed: int
    # Ids still pending at the end, oldest first (DescribePcpu pending_record_ids).
    pending_ids: tuple[int, ...] = ()
    # False when the firmware had more pending records than the ids read.
    pending_ids_complete: bool = True


@dataclass(frozen=True)
class LoggedRecord:
    """One row of dom0's durable log."""

    pcpu: int
    record_id: int
    type: str
    severity: str
    created_monotonic_ns: int
    logged_monotonic_ns: int


@dataclass(frozen=True)
class Sample:
    """The coordinator's state sampled during the run (DescribeHypervisor)."""

    t_ns: int
    queue_depth: dict[str, int]  # per type, waiting entries (+1 if one is in flight)
    polling_lines: list[tuple[int, str]]  # (pcpu, "CMC"/"CPE") lines in polling mode
    reachable: bool = True  # False when the coordinator did not answer


@dataclass(frozen=True)
class FaultRecord:
    """A fault the runner applied: what, when, to what, and what it did."""

    kind: str
    target: str
    start_ns: int
    end_ns: int | None
    effect: str
    params: dict[str, Any] = field(default_factory=dict)
    # Its index in the scenario's `faults` list (the "#k" effects refer to), when scheduled.
    fault: int | None = None
    # "applied", "merged" (joined an earlier fault's hold on the same target),
    # "no-op", "heal failed" or "apply failed" (fault_targets.Outcome).
    outcome: str = "applied"
    # The other faults on the same target it overlapped with (merged with, or ended by).
    overlapped_by: tuple[int, ...] = ()
    # The fault whose heal (or kill) ended its effect: itself when it healed alone.
    ended_by: int | None = None


@dataclass
class RunData:
    scenario: Scenario
    start_ns: int
    workload_end_ns: int
    end_ns: int
    firmware: list[FirmwareCounts]
    log: list[LoggedRecord]
    # Re-delivered records dom0 recognised and did not log again.
    redelivered: int
    # Every component's events, merged and sorted by t_mono_ns.
    events: list[dict[str, Any]]
    samples: list[Sample]
    faults: list[FaultRecord]
    # Records the workload asked the pCPUs to create.
    requested: int
    # True when nothing was pending in any pCPU by the end of the drain.
    drained: bool
    versions: dict[str, str] = field(default_factory=dict)
    # Problems that make a check impossible to evaluate (valid becomes "unknown").
    problems: list[str] = field(default_factory=list)
    results_dir: str = ""
    # The coordinator's DescribeHypervisor after the drain, as a dict (proto field names);
    # None when it did not answer.
    final_xen: dict[str, Any] | None = None
    # CPU seconds each component used during the workload (None: it was restarted meanwhile).
    cpu_s: dict[str, float | None] = field(default_factory=dict)
    # "real": separate processes on the machine's clock; "virtual": one process on a
    # VirtualClock (times are virtual seconds; latency is not judged).
    clock: str = "real"
    # A run on a deployment (--target): each host's clock offset from the runner's, by
    # which its events' t_mono_ns were corrected (offset_ms, uncertainty_ms, samples).
    clock_offsets: dict[str, dict[str, float | int]] = field(default_factory=dict)

    def seconds(self, t_ns: int) -> float:
        return (t_ns - self.start_ns) / 1e9
