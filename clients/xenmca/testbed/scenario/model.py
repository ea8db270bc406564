"""A scenario, as the runner uses it: the typed form of a validated scenario file.

`loader.load_scenario(path)` builds these from YAML after checking
the file against the schema; everything here is already valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SeverityMix:
    """Relative weights of the severities of generated records (normalised when used)."""

    corrected: float = 1.0
    recoverable: float = 0.0
    fatal: float = 0.0


@dataclass(frozen=True)
class Stream:
    """Steady traffic: Poisson arrivals at `rate` records/s on each listed pCPU."""

    type: str  # "cmc" | "cpe" | "mca" | "init"
    rate: float  # records per second per pCPU
    pcpus: tuple[int, ...]  # resolved list ("all" becomes every pCPU)
    severity: SeverityMix = field(default_factory=SeverityMix)
    start_s: float = 0.0
    duration_s: float | None = None  # None: until the end of the scenario


@dataclass(frozen=True)
class Storm:
    """A burst made by the pCPU host itself: `rate` records/s for `duration_s` on each pCPU."""

    type: str
    pcpus: tuple[int, ...]
    rate: float
    start_s: float
    duration_s: float
    severity: str = "corrected"


@dataclass(frozen=True)
class Burst:
    """Records created at once: `count` records on each listed pCPU at `at_s` (one InjectError)."""

    type: str
    pcpus: tuple[int, ...]
    count: int
    at_s: float
    severity: str = "corrected"


@dataclass(frozen=True)
class RawRecords:
    """Real SAL records stored as given on `pcpu` at `at_s`, in order (one InjectError each).

    `raw_hex` holds each record's exact bytes (already strictly decoded); the pCPU
    writes its own record id into each header. `source` is the file they came from,
    or "hex".
    """

    pcpu: int
    at_s: float
    type: str
    raw_hex: tuple[str, ...]
    source: str = "hex"


@dataclass(frozen=True)
class Fault:
    """One scheduled fault (the kinds are defined by the faults issue)."""

    at_s: float
    kind: str
    target: str
    params: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Vcpu0Move:
    """dom0 vCPU0 runs on `pcpu` from `at_s` on (the coordinator's SetVcpuPlacement)."""

    at_s: float
    pcpu: int


@dataclass(frozen=True)
class ExpectedTransition:
    """A throttle transition the run must show: pCPU's line goes to `mode` at least once."""

    pcpu: int
    type: str  # "cmc" | "cpe"
    mode: str  # "polling" | "interrupt"


@dataclass(frozen=True)
class Checks:
    """What must hold for the run to be valid."""

    max_lost: int = 0
    max_duplicates: int = 0
    max_cleared_before_logged: int = 0
    latency_p99_ms: float | None = None
    latency_max_ms: float | None = None
    # Relative bounds: this many floors (4 round trips + 1 durable commit, as the run
    # measured them) plus the scenario's longest polling interval (check/latency.py).
    latency_p99_floors: float | None = None
    latency_max_floors: float | None = None
    expect_transitions: tuple[ExpectedTransition, ...] = ()
    # Lines that must end the run in interrupt mode (every storm is over).
    all_lines_back_to_interrupt: bool = True
    # Records allowed still pending in firmware after the drain (stranded).
    max_stranded: int = 0
    # Fairness: a record is overtaken by at most as many records of its type from other
    # pCPUs as there were other pCPUs with records pending while it waited, or by
    # max_overtaken when set.
    fairness: bool = True
    max_overtaken: int | None = None
    # Isolation: no line is switched to polling unless its own records made a storm.
    isolation: bool = True
    # Every GET and CLEAR was local exactly when vCPU0 ran on the record's pCPU.
    local_calls: bool = True


@dataclass(frozen=True)
class Policy:
    """The coordinator's and dom0's policies (xenmca.xen.policy, xenmca.dom0 policies)."""

    xen: str = "xenmca"
    dom0: str = "xenmca"
    # Knob overrides on top of the named coordinator policy: {"after_clear": "head"}.
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Throttle:
    preset: str = "fast"
    settings: dict[str, float | int | bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    seed: int
    pcpus: int
    duration_s: float
    vcpu0_pcpu: int = 0
    vcpu0_moves: tuple[Vcpu0Move, ...] = ()
    pcpus_per_host: int = 64
    capacity: int = 256
    durable_pcpus: bool = True
    throttle: Throttle = field(default_factory=Throttle)
    cpe_poll_min_s: float = 0.05
    cpe_poll_max_s: float = 0.5
    drain_timeout_s: float = 60.0
    # After the drain, how long to wait for throttled lines to return to interrupt mode.
    settle_timeout_s: float = 10.0
    streams: tuple[Stream, ...] = ()
    storms: tuple[Storm, ...] = ()
    bursts: tuple[Burst, ...] = ()
    faults: tuple[Fault, ...] = ()
    checks: Checks = field(default_factory=Checks)
    # "loopback", or "netns": every component in its own network namespace (root only).
    network: str = "loopback"
    # Test-only: a deliberately broken coordinator rule, to show the checkers can fail.
    broken_rule: str | None = None
    policy: Policy = field(default_factory=Policy)
    # The pCPUs' firmware: "extended" (xenmca's clear by id and counters) or "plain" SAL.
    sal: str = "extended"
    # dom0 linux-salinfo's modelled user-space pace per record (seconds); None: its default.
    salinfo_decode_delay_s: float | None = None
    # The drain ends early when nothing pending changed for this long (records are stranded).
    drain_idle_s: float = 10.0
    # Real SAL records injected as given (workload.records).
    records: tuple[RawRecords, ...] = ()
