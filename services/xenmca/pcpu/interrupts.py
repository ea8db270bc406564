"""The interrupt lines of one pCPU: fan-out of one interrupt per new stored record.

Every WatchInterrupts call is one subscription with its own queue; raising an
interrupt puts it in every subscription's queue. A subscriber that falls more
than ``max_backlog`` interrupts behind is ended with ``SubscriptionLagged``
rather than silently missing interrupts (it resubscribes and reads the
firmware's pending records). Masks are the store's business: the firmware only
raises interrupts for records created while their line was unmasked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from enum import Enum

DEFAULT_MAX_BACKLOG = 100_000


@dataclass(frozen=True, slots=True)
class Interrupt:
    """One interrupt raised on a line."""

    pcpu: int
    record_type: int
    record_id: int
    raised_wall_ns: int


class _End(Enum):
    CLOSED = "closed"
    LAGGED = "lagged"


class SubscriptionLagged(Exception):
    """The subscriber fell too far behind; its subscription was ended."""


class Subscription:
    """One subscriber's queue of interrupts; iterate it to receive them."""

    def __init__(self, line: InterruptLine, max_backlog: int) -> None:
        self._line = line
        self._queue: asyncio.Queue[Interrupt | _End] = asyncio.Queue()
        self._max_backlog = max_backlog
        self._ended = False

    def _offer(self, interrupt: Interrupt) -> None:
        if self._ended:
            return
        if self._queue.qsize() >= self._max_backlog:
            self._end(_End.LAGGED)
            return
        self._queue.put_nowait(interrupt)

    def _end(self, why: _End) -> None:
        if self._ended:
            return
        self._ended = True
        self._line._remove(self)
        if why is _End.LAGGED:
            while not self._queue.empty():
                self._queue.get_nowait()
        self._queue.put_nowait(why)

    def close(self) -> None:
        """Stop receiving (idempotent); the subscriber is removed from the line."""
        self._end(_End.CLOSED)

    async def __aiter__(self) -> AsyncIterator[Interrupt]:
        try:
            while True:
                item = await self._queue.get()
                if item is _End.CLOSED:
                    return
                if item is _End.LAGGED:
                    raise SubscriptionLagged(
                        f"more than {self._max_backlog} interrupts were waiting to be sent"
                    )
                assert isinstance(item, Interrupt)
                yield item
        finally:
            self.close()


class InterruptLine:
    """The four lines of one pCPU and their subscribers."""

    def __init__(self, pcpu: int, max_backlog: int = DEFAULT_MAX_BACKLOG) -> None:
        self.pcpu = pcpu
        self._max_backlog = max_backlog
        self._subscriptions: list[Subscription] = []
        self._closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def subscribe(self) -> Subscription:
        """A new subscription; every interrupt raised from now on reaches it."""
        subscription = Subscription(self, self._max_backlog)
        if self._closed:
            subscription.close()
        else:
            self._subscriptions.append(subscription)
        return subscription

    def raise_interrupts(self, record_type: int, record_ids: Iterable[int], wall_ns: int) -> None:
        """One interrupt per record id, to every subscriber."""
        if not self._subscriptions:
            return
        interrupts = [Interrupt(self.pcpu, record_type, rid, wall_ns) for rid in record_ids]
        for subscription in list(self._subscriptions):
            for interrupt in interrupts:
                subscription._offer(interrupt)

    def close(self) -> None:
        """End every subscription (their streams finish cleanly); no new ones are kept."""
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.close()

    def _remove(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
