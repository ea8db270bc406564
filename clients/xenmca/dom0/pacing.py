"""How long dom0 waits: ia64's CPE poll interval, and a wait that stop() cuts short.

Backoffs (re-attaching, retrying commits) are xenmca.rpc.retry's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass

LINUX_CPE_POLL_MIN = 120.0
"""Linux ia64 mca.c MIN_CPE_POLL_INTERVAL: 2 minutes."""
LINUX_CPE_POLL_MAX = 900.0
"""Linux ia64 mca.c MAX_CPE_POLL_INTERVAL: 15 minutes."""


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
