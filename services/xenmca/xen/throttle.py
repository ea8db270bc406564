"""Storm throttling per line: the policy interface and the ia64 algorithm (mca.c).

A line is one pCPU's CMC or CPE interrupt line. Each has its own history,
mode and polling interval, so a storm on one pCPU leaves the others alone.
Policies are pure: they are told the time and what a poll found and answer
with the transition to make; the coordinator does the masking and polling.
"""

from __future__ import annotations

import enum
from collections import deque
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

    def on_poll(self, found_new: int) -> Transition | None:
        """A poll found found_new records never seen before; return the resulting change."""
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

    def on_poll(self, found_new: int) -> Transition | None:
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

    def on_poll(self, found_new: int) -> Transition | None:
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


class Ia64Throttle:
    """The ia64 storm rule as a policy factory: one line object per (pCPU, CMC|CPE)."""

    name = "ia64"

    def __init__(self, settings: ThrottleSettings) -> None:
        self.settings = settings

    def new_line(self, is_cpe: bool) -> LinePolicy:
        return CpeLine(self.settings) if is_cpe else CmcLine(self.settings)
