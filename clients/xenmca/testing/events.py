"""EventWatch: every event the in-process components emit, and waits on them (no sleeps).

A test subscribes one watch to the components' event logs (``EventLog.subscribe``)
and awaits the first moment a predicate over the events holds: each new event wakes
the waiters, which check again. A wait that does not come true in time raises
TimeoutError.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from xenmca.rpc.events import Event

DEFAULT_WITHIN = 10.0
"""Seconds a wait lasts before it raises TimeoutError."""


class EventWatch:
    """Collects events and lets a test await the first one that matches."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def matching(self, kind: str, **fields: Any) -> list[Event]:
        """The events of that kind whose fields equal the ones given (``component="pcpu"``)."""
        return [
            e
            for e in self.events
            if e["kind"] == kind and all(e.get(k) == v for k, v in fields.items())
        ]

    async def until(self, predicate: Callable[[], bool], within: float = DEFAULT_WITHIN) -> None:
        """Return once predicate() is true, checked again after every event."""
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_for(
        self, kind: str, count: int = 1, within: float = DEFAULT_WITHIN, **fields: Any
    ) -> None:
        """Return once at least count events match kind and fields."""
        await self.until(lambda: len(self.matching(kind, **fields)) >= count, within)
