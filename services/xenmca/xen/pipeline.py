"""Pipelined mode: read ahead by IPI, and answer dom0's CLEAR while the clear is on its way.

Both moves keep the invariants. A GET is non-destructive and only the
coordinator clears, so a record read ahead for a queued entry is still the
one its pCPU will return until that entry's CLEAR. A clear is still sent
only after dom0 asked for it, by record id; if it is then lost, the record
stays in firmware, its entry stays queued, and it is delivered again (dom0's
log drops the duplicate). An entry with a clear under way is not injected
until the clear's answer says whether its pCPU has more records.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.xen.firmware import Cleared
from xenmca.xen.sal_calls import CallOutcome

Key = tuple[int, int]  # (pcpu, record type)
GetResult = tuple[sal_pb2.GetStateInfoResponse | None, CallOutcome]
ClearResult = tuple[Cleared | None, CallOutcome]


class Pipeline:
    """Read-ahead GETs and background CLEARs, keyed by (pCPU, type)."""

    def __init__(self) -> None:
        self._reads: dict[Key, asyncio.Task[GetResult]] = {}
        self._clears: dict[Key, asyncio.Task[None]] = {}

    def clearing(self, key: Key) -> bool:
        return key in self._clears

    def read_ahead(self, key: Key, get: Callable[[], Awaitable[GetResult]]) -> None:
        """Start reading key's current record now (after any clear of it still under way)."""
        if key in self._reads:
            return

        async def read() -> GetResult:
            pending_clear = self._clears.get(key)
            if pending_clear is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pending_clear)
            return await get()

        self._reads[key] = asyncio.create_task(read(), name=f"read-ahead-{key}")

    def take_read(self, key: Key) -> asyncio.Task[GetResult] | None:
        """The read-ahead for key, if one was started; it is then no longer cached."""
        return self._reads.pop(key, None)

    def forget_read(self, key: Key) -> None:
        task = self._reads.pop(key, None)
        if task is not None:
            task.cancel()

    def clear_in_background(
        self,
        key: Key,
        clear: Callable[[], Awaitable[ClearResult]],
        done: Callable[[ClearResult], None],
    ) -> None:
        """Send the clear now, call done(result) when its answer (or final failure) is in."""

        async def run() -> None:
            try:
                result = await clear()
            finally:
                self._clears.pop(key, None)
            done(result)

        self._clears[key] = asyncio.create_task(run(), name=f"clear-{key}")

    async def wait_clear(self, key: Key) -> None:
        task = self._clears.get(key)
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    async def stop(self) -> None:
        tasks = [*self._reads.values(), *self._clears.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._reads.clear()
        self._clears.clear()
