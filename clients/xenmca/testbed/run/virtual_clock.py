"""Virtual time for a whole testbed in one process: the clock jumps whenever the run is idle.

Every component of an in-process run (pCPU firmware, coordinator, dom0, the
workload, the drain) reads the time from one `VirtualClock` and sleeps on it.
Nothing sleeps in real time, so a scenario whose timings are minutes (the
kernel's 60 s CMC polls, CPE polls of 120-900 s) runs in as long as its records
take to handle. The clock moves only when the run is idle: no unary call of the
runner's own channels (the workload's InjectError, the drain's reads) is in
flight, and nothing read the clock, slept on it or emitted an event for a quiet
window of real time. It then jumps to the earliest sleeper's deadline and wakes
every sleeper due by then, in deadline order, as `FakeClock.advance` does. The
components' own calls are not counted: a handler may itself sleep on the clock
(an rpc fault's delay), and holding the clock still for its caller would stop
the very time it waits for.

What this gives up, said plainly: work is free in virtual time (a record's GET,
commit and CLEAR take no virtual time unless the run was idle while one was in
flight), so latencies are not measures of any machine, and a call that stays in
flight longer than the quiet window without any other activity (rare: dom0's
fsync on a busy disk, or a message on a stream) lets virtual time pass meanwhile.
The record invariants do not depend on timing and are checked as in a real run.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import grpc

QUIET_S = 0.002
"""Real seconds without any activity (twice in a row) before the clock may jump."""


class VirtualClock:
    """A Clock whose time moves only while the run it serves is idle (see the module)."""

    def __init__(
        self, start: float = 1000.0, wall_start: float | None = None, quiet_s: float = QUIET_S
    ) -> None:
        self._now = start
        self._start = start
        self._wall_start = time.time() if wall_start is None else wall_start
        self.quiet_s = quiet_s
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._activity = 0
        self._busy = 0
        self.jumps = 0
        """How many times the clock moved (a measure of how idle the run was)."""

    # -- the Clock protocol ------------------------------------------------------------

    def now(self) -> float:
        self._activity += 1
        return self._now

    def now_ns(self) -> int:
        self._activity += 1
        return round(self._now * 1e9)

    def wall(self) -> float:
        self._activity += 1
        return self._wall_start + (self._now - self._start)

    async def sleep(self, seconds: float) -> None:
        self._activity += 1
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        await future

    # -- what tells the clock the run is not idle -------------------------------------

    def touch(self, *_: Any) -> None:
        """Something happened (an event listener, a callback): the run is not idle."""
        self._activity += 1

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Work in flight that does not touch the clock (a call on another thread)."""
        self._busy += 1
        self._activity += 1
        try:
            yield
        finally:
            self._busy -= 1
            self._activity += 1

    def interceptor(self) -> grpc.aio.UnaryUnaryClientInterceptor:
        """A client interceptor that keeps the clock still while a unary call is in flight."""
        return _BusyWhileCalling(self)

    # -- moving time -------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        """Virtual seconds since the clock started."""
        return self._now - self._start

    def _next_deadline(self) -> float | None:
        while self._sleepers and self._sleepers[0][2].done():  # cancelled sleepers
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    def _jump(self, deadline: float) -> None:
        self._now = max(self._now, deadline)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
        self.jumps += 1
        self._activity += 1

    async def run(self) -> None:
        """Move time whenever the run is idle; runs until cancelled."""
        while True:
            seen = self._activity
            await asyncio.sleep(self.quiet_s)
            if self._busy or self._activity != seen:
                continue
            await asyncio.sleep(self.quiet_s)
            if self._busy or self._activity != seen:
                continue
            deadline = self._next_deadline()
            if deadline is not None:
                self._jump(deadline)


class _BusyWhileCalling(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        with self._clock.busy():
            call = await continuation(client_call_details, request)
            with contextlib.suppress(grpc.aio.AioRpcError):
                await call  # held until the reply (or the error) is in
        return call
