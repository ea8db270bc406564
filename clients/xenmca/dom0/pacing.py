"""How long dom0 waits: reconnect backoff (exponential, jittered) and ia64's CPE poll interval."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from dataclasses import dataclass

LINUX_CPE_POLL_MIN = 120.0
"""Linux ia64 mca.c MIN_CPE_POLL_INTERVAL: 2 minutes."""
LINUX_CPE_POLL_MAX = 900.0
"""Linux ia64 mca.c MAX_CPE_POLL_INTERVAL: 15 minutes."""


@dataclass(frozen=True)
class BackoffPolicy:
    """Reconnect delays: initial * multiplier**n, capped at maximum, with "equal jitter".

    Each delay is drawn from [d * (1 - jitter), d], so many dom0s (or one dom0
    and a restarting coordinator) do not retry in lock step.
    """

    initial: float = 0.1
    maximum: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if self.multiplier < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("backoff needs multiplier >= 1 and 0 <= jitter <= 1")


class Backoff:
    """The delays of one run of failures; reset() after a success."""

    def __init__(self, policy: BackoffPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self._rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt, counting one more failure."""
        p = self.policy
        ceiling = min(p.maximum, p.initial * p.multiplier**self.failures)
        self.failures += 1
        return ceiling * (1 - p.jitter * self._rng.random())

    def reset(self) -> None:
        self.failures = 0


@dataclass(frozen=True)
class PollSettings:
    """One polled record type's interval bounds, in seconds."""

    min_interval: float = LINUX_CPE_POLL_MIN
    max_interval: float = LINUX_CPE_POLL_MAX

    def __post_init__(self) -> None:
        if not 0 < self.min_interval <= self.max_interval:
            raise ValueError(
                f"poll interval bounds must satisfy 0 < min <= max, "
                f"got min={self.min_interval} max={self.max_interval}"
            )


def next_poll_interval(current: float, found: int, settings: PollSettings) -> float:
    """ia64's dynamic interval: halve (not below min) after finding records, else double."""
    if found > 0:
        return max(settings.min_interval, current / 2)
    return min(settings.max_interval, current * 2)


async def wait_unless_stopped(waiting: Awaitable[object], stopping: asyncio.Event) -> bool:
    """Wait for waiting, or until stopping is set; False when stopping (waiting is cancelled)."""
    if stopping.is_set():
        if asyncio.iscoroutine(waiting):
            waiting.close()  # never started
        return False
    work = asyncio.ensure_future(waiting)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        work.cancel()
        stop.cancel()
    return not stopping.is_set()
