"""An injectable clock: the real one, and a fake one that tests advance by hand.

Everything that reads the time or sleeps takes a `Clock`: the coordinator, dom0,
the retry module, the event log, dom0's log store, and the testbed's runner,
workload, fault schedule and sampler. Only measurements of the machine's own
speed (calibration floors, a call's cost in milliseconds) read
`time.perf_counter()` directly: they measure real work whatever clock a run uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from contextlib import AbstractContextManager
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    def now_ns(self) -> int:
        """The same monotonic scale in integer nanoseconds (event and record stamps)."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch (what a person reads the time of an event as)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait until now() has advanced by seconds."""
        ...

    def busy(self) -> AbstractContextManager[None]:
        """Work in flight that does not touch the clock (a commit on another thread): a
        clock that moves when its run is idle (the testbed's VirtualClock) holds still
        meanwhile; the real and the fake clock ignore it."""
        ...


class MonotonicClock:
    """The real clock."""

    def now(self) -> float:
        return time.monotonic()

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def busy(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()


class FakeClock:
    """Time moves only when a test calls advance(); sleepers wake in deadline order."""

    def __init__(self, start: float = 1000.0, wall_start: float = 1_780_000_000.0) -> None:
        self._now = start
        self._start = start
        self._wall_start = wall_start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def now_ns(self) -> int:
        return round(self._now * 1e9)

    def wall(self) -> float:
        return self._wall_start + (self._now - self._start)

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), next(self._seq), future))
        await future

    def busy(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper whose deadline passes, in order."""
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not future.done():
                future.set_result(None)
            # Let the woken task run (and perhaps sleep again) before going on.
            for _ in range(5):
                await asyncio.sleep(0)
        self._now = target
