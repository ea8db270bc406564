"""Storm throttling per line: the policy interface, the ia64 algorithm (mca.c), x86's CMCI storm
tracking (Linux mce/threshold.c) and mcelog's leaky bucket, side by side.

A line is one pCPU's CMC or CPE interrupt line. Each has its own history,
mode and polling interval, so a storm on one pCPU leaves the others alone.
Policies are pure: they are told the time and what a poll found and answer
with the transition to make; the coordinator does the masking and polling.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from xenmca.xen.throttle_settings import ThrottleSettings


class Mode(enum.Enum):
    INTERRUPT = "interrupt"
    POLLING = "polling"


@dataclass(frozen=True)
class Transition:
    """A change of mode (or of polling interval) and why."""

    old: Mode
    new: Mode
    interval: float
    why: str


class LinePolicy(Protocol):
    """What the coordinator needs of a storm rule, for one line."""

    mode: Mode
    interval: float

    def on_interrupt(self, now: float) -> Transition | None:
        """An interrupt arrived at now; return a transition to polling, if the rule says so."""
        ...

    def on_poll(self, found_new: int, now: float) -> Transition | None:
        """A poll at now found found_new records; return the resulting change."""
        ...


class StormHistory:
    """mca.c's rule: the interrupt that makes history_length within window is a storm."""

    def __init__(self, length: int, window: float) -> None:
        self.window = window
        self.length = length
        self._times: deque[float] = deque(maxlen=length)

    def is_storm(self, now: float) -> bool:
        """Record an interrupt at now; O(history_length), a constant."""
        count = 1 + sum(1 for t in self._times if now - t <= self.window)
        if count >= self.length:
            self._times.clear()
            return True
        self._times.append(now)
        return False


class CmcLine:
    """CMC: storm → poll every cmc_poll_interval; an empty poll returns to interrupt mode."""

    def __init__(self, settings: ThrottleSettings) -> None:
        self.settings = settings
        self.mode = Mode.INTERRUPT
        self.interval = settings.cmc_poll_interval
        self._history = StormHistory(settings.history_length, settings.window)

    def on_interrupt(self, now: float) -> Transition | None:
        if self.mode is Mode.POLLING or not self._history.is_storm(now):
            return None
        self.mode = Mode.POLLING
        return Transition(Mode.INTERRUPT, Mode.POLLING, self.interval, "storm")

    def on_poll(self, found_new: int, now: float) -> Transition | None:
        if self.mode is Mode.INTERRUPT or found_new > 0:
            return None
        self.mode = Mode.INTERRUPT
        return Transition(Mode.POLLING, Mode.INTERRUPT, self.interval, "empty poll")


class CpeLine:
    """CPE, as mca.c ia64_mca_cpe_int_caller: storm -> poll from cpe_poll_min.

    A poll that found records sets t = max(MIN, t/2). An empty poll on a line
    without a CPE vector (``cpe_vector < 0``) sets t = min(MAX, 2t) and keeps
    polling; an empty poll on a line with a vector returns to interrupt mode at
    once ("Returning to interrupt driven CPE handler") and resets t to MIN.
    """

    def __init__(self, settings: ThrottleSettings) -> None:
        self.settings = settings
        self.can_interrupt = settings.cpe_can_interrupt
        # A line without an interrupt vector polls from the start (mca.c: cpe_vector < 0).
        self.mode = Mode.INTERRUPT if self.can_interrupt else Mode.POLLING
        self.interval = settings.cpe_poll_min
        self._history = StormHistory(settings.history_length, settings.window)

    def on_interrupt(self, now: float) -> Transition | None:
        if self.mode is Mode.POLLING or not self._history.is_storm(now):
            return None
        self.mode = Mode.POLLING
        self.interval = self.settings.cpe_poll_min
        return Transition(Mode.INTERRUPT, Mode.POLLING, self.interval, "storm")

    def on_poll(self, found_new: int, now: float) -> Transition | None:
        if self.mode is Mode.INTERRUPT:
            return None
        old = self.interval
        if found_new > 0:
            self.interval = max(self.settings.cpe_poll_min, self.interval / 2)
        elif not self.can_interrupt:
            self.interval = min(self.settings.cpe_poll_max, self.interval * 2)
        else:
            self.mode = Mode.INTERRUPT
            self.interval = self.settings.cpe_poll_min
            return Transition(Mode.POLLING, Mode.INTERRUPT, self.interval, "empty poll")
        if self.interval != old:
            why = "records found: halve" if found_new > 0 else "nothing found: double"
            return Transition(Mode.POLLING, Mode.POLLING, self.interval, why)
        return None


class CmciLine:
    """x86 CMCI storms, as Linux 6.8+ mce/threshold.c mce_track_storm.

    A 64-bit history, shifted at each look: by the ticks since the last look (plus
    one) while interrupts are on, by one per poll in storm mode; bit 0 is set when
    the look saw a corrected error. STORM_BEGIN_THRESHOLD (5) set bits start a storm
    (the line is polled every tick); no error in the last STORM_END_POLL_THRESHOLD + 1
    (30) polls ends it. The tick is HZ in Linux (1 s).
    """

    _MASK = (1 << 64) - 1

    def __init__(self, settings: ThrottleSettings) -> None:
        self.settings = settings
        self.mode = Mode.INTERRUPT
        self.interval = settings.cmci_poll_interval
        self.history = 0
        self._stamp: float | None = None

    def _shift(self, shift: int, error: bool) -> None:
        self.history = (self.history << shift) & self._MASK if shift < 64 else 0
        if error:
            self.history |= 1

    def on_interrupt(self, now: float) -> Transition | None:
        if self.mode is Mode.POLLING:
            return None  # CMCI is off for a bank in storm mode
        ticks = 64 if self._stamp is None else int((now - self._stamp) / self.settings.cmci_tick)
        self._stamp = now
        self._shift(ticks + 1, error=True)
        if self.history.bit_count() < self.settings.cmci_storm_begin:
            return None
        self.mode = Mode.POLLING
        return Transition(Mode.INTERRUPT, Mode.POLLING, self.interval, "CMCI storm detected")

    def on_poll(self, found_new: int, now: float) -> Transition | None:
        if self.mode is Mode.INTERRUPT:
            return None
        self._stamp = now
        self._shift(1, error=found_new > 0)
        quiet = (1 << self.settings.cmci_storm_end_polls) - 1
        if self.history & quiet:
            return None
        self.mode = Mode.INTERRUPT
        self.history = 0
        return Transition(Mode.POLLING, Mode.INTERRUPT, self.interval, "CMCI storm subsided")


class LeakyBucketLine:
    """mcelog's leaky bucket (leaky-bucket.c __bucket_account) as a storm rule.

    The bucket holds up to bucket_capacity records and leaks bucket_capacity per
    bucket_agetime (aged in whole agetimes, as bucket_age does); the interrupt that
    overflows it starts a storm (and empties it, as mcelog does). A polled line
    returns to interrupt mode at the first poll that finds nothing.
    """

    def __init__(self, settings: ThrottleSettings) -> None:
        self.settings = settings
        self.mode = Mode.INTERRUPT
        self.interval = settings.cmc_poll_interval
        self.count = 0
        self._stamp: float | None = None

    def _account(self, now: float, inc: int) -> bool:
        capacity, agetime = self.settings.bucket_capacity, self.settings.bucket_agetime
        if self._stamp is None:
            self._stamp = now
        diff = now - self._stamp
        if diff >= agetime:
            age = int(diff / agetime * capacity)
            self._stamp = now
            self.count = max(0, self.count - age)
        self.count += inc
        if self.count >= capacity:
            self.count = 0
            return True
        return False

    def on_interrupt(self, now: float) -> Transition | None:
        if self.mode is Mode.POLLING or not self._account(now, 1):
            return None
        self.mode = Mode.POLLING
        return Transition(Mode.INTERRUPT, Mode.POLLING, self.interval, "bucket overflowed")

    def on_poll(self, found_new: int, now: float) -> Transition | None:
        if self.mode is Mode.INTERRUPT:
            return None
        self._account(now, found_new)
        if found_new > 0:
            return None
        self.mode = Mode.INTERRUPT
        return Transition(Mode.POLLING, Mode.INTERRUPT, self.interval, "empty poll")


def _ia64_line(settings: ThrottleSettings, is_cpe: bool) -> LinePolicy:
    return CpeLine(settings) if is_cpe else CmcLine(settings)


LINE_POLICIES: dict[str, Callable[[ThrottleSettings, bool], LinePolicy]] = {
    # mca.c: CMC and CPE lines each with their own rule.
    "ia64": _ia64_line,
    # The same rule for both line types.
    "x86-cmci": lambda settings, _is_cpe: CmciLine(settings),
    "leaky-bucket": lambda settings, _is_cpe: LeakyBucketLine(settings),
}


class StormRule:
    """The storm rule as a factory of line policies: one per (pCPU, CMC|CPE) line,
    of the kind ``settings.policy`` names (LINE_POLICIES)."""

    def __init__(self, settings: ThrottleSettings) -> None:
        self.settings = settings
        self.name = settings.policy
        self._make = LINE_POLICIES[settings.policy]

    def new_line(self, is_cpe: bool) -> LinePolicy:
        return self._make(self.settings, is_cpe)
