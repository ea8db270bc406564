"""The interrupt lines of one pCPU: fan-out of one interrupt per new stored record.

Every WatchInterrupts call is one subscription with its own bounded queue;
raising interrupts puts them in every subscription's queue (the same objects,
not copies). A subscriber that would have more than ``max_backlog`` interrupts
waiting is ended with ``SubscriptionLagged`` rather than silently missing
interrupts or slowing the others (it resubscribes and reads the firmware's
pending records, as the coordinator's link does). How many subscribers a pCPU
serves at once is the server's stream limit (xenmca.rpc.stream_limit). Masks
are the store's business: the firmware only raises interrupts for records
created while their line was unmasked.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

DEFAULT_MAX_BACKLOG = 32_768
"""Interrupts one subscriber may have waiting. An InjectError without a rate raises
all its interrupts at once, and the coordinator must absorb a 20 000-record batch
without being cut off; beyond that it is cut off, resubscribes and reconciles.
Per subscriber this is at most 256 KiB of queue (the interrupts are shared)."""


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
    """One subscriber's queue of interrupts; iterate it to receive them.

    A plain deque and one waiter future (not an asyncio.Queue): a host keeps one
    subscription per pCPU for the coordinator's stream, so this stays small.
    ``cut_off`` is set when it lags, for a sender blocked on a reader that does
    not read (xenmca.rpc.stream_writer).
    """

    __slots__ = ("_ended", "_items", "_line", "_waiter", "cut_off")

    def __init__(self, line: InterruptLine) -> None:
        self._line = line
        self._items: deque[Interrupt] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended: _End | None = None
        self.cut_off = asyncio.Event()

    @property
    def waiting(self) -> int:
        """Interrupts raised for this subscriber and not yet taken."""
        return len(self._items)

    def lagged_error(self) -> SubscriptionLagged:
        return SubscriptionLagged(
            f"more than {self._line.max_backlog} interrupts were waiting to be sent"
        )

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _offer(self, interrupts: Sequence[Interrupt]) -> None:
        if self._ended is not None:
            return
        if len(self._items) + len(interrupts) > self._line.max_backlog:
            self._end(_End.LAGGED)
            return
        self._items.extend(interrupts)
        self._wake()

    def _end(self, why: _End) -> None:
        if self._ended is not None:
            return
        self._ended = why
        self._line._remove(self)
        if why is _End.LAGGED:
            self._line.lagged += 1
            self._items.clear()
            self.cut_off.set()
        self._wake()

    def close(self) -> None:
        """Stop receiving (idempotent); the subscriber is removed from the line."""
        self._end(_End.CLOSED)

    async def __aiter__(self) -> AsyncIterator[Interrupt]:
        try:
            while True:
                if self._items:
                    yield self._items.popleft()
                    continue
                if self._ended is _End.CLOSED:
                    return
                if self._ended is _End.LAGGED:
                    raise self.lagged_error()
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
        finally:
            self.close()


class InterruptLine:
    """The four lines of one pCPU and their subscribers."""

    def __init__(self, pcpu: int, max_backlog: int = DEFAULT_MAX_BACKLOG) -> None:
        self.pcpu = pcpu
        self.max_backlog = max_backlog
        """Read on every raise: a change applies to the current subscribers too."""
        self.lagged = 0
        """Subscriptions ended because they fell more than max_backlog behind."""
        self._subscriptions: list[Subscription] = []
        self._closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def subscribe(self) -> Subscription:
        """A new subscription; every interrupt raised from now on reaches it."""
        subscription = Subscription(self)
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
            subscription._offer(interrupts)

    def close(self) -> None:
        """End every subscription (their streams finish cleanly); no new ones are kept."""
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.close()

    def _remove(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
