"""A scenario, as the runner uses it: the typed form of a validated scenario file.

`scenario_loader.load_scenario(path)` builds these from YAML after checking
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
class Fault:
    """One scheduled fault (the kinds are defined by the faults issue)."""

    at_s: float
    kind: str
    target: str
    params: dict[str, object] = field(default_factory=dict)


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
    expect_transitions: tuple[ExpectedTransition, ...] = ()
    # Lines that must end the run in interrupt mode (every storm is over).
    all_lines_back_to_interrupt: bool = True


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
    faults: tuple[Fault, ...] = ()
    checks: Checks = field(default_factory=Checks)
    # "loopback", or "netns": every component in its own network namespace (root only).
    network: str = "loopback"
    # Test-only: a deliberately broken coordinator rule, to show the checkers can fail.
    broken_rule: str | None = None
