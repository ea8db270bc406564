"""Whether dom0's log takes commits: one backoff for every retry, and its state reported once.

A commit that fails (a full disk, an I/O error, anything SQLite raises) leaves
the record pending in firmware, which is right; what must not happen is that
every poll tick and every re-injected interrupt tries again at once, each with
a GET through the coordinator and an ERROR line. All record types share one
``LogHealth`` (they share the disk). While the log takes no commits, a pass
that may commit waits for its turn: the next attempt comes after an
exponential, capped delay (``DEFAULT_COMMIT_BACKOFF``), and only one attempt
is in progress at a time. The first commit that succeeds makes the log
writable again, resets the backoff, and lets every waiting pass go.

The state is reported at its transitions, not per attempt: event
``log_unwritable`` (with the error) and one ERROR line when commits start
failing; event ``log_writable`` (how long, how many failed attempts) and one
INFO line when one succeeds again; each failed attempt is event
``commit_failed`` and, after the first, a DEBUG line. Subscribers (dom0's
health listener) are told of each transition; Prometheus reads ``writable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable

from xenmca.dom0.pacing import wait_unless_stopped
from xenmca.rpc.clock import Clock
from xenmca.rpc.events import EventLog
from xenmca.rpc.retry import Backoff, BackoffPolicy

log = logging.getLogger(__name__)

DEFAULT_COMMIT_BACKOFF = BackoffPolicy(initial=1.0, maximum=60.0, multiplier=2.0, jitter="none")
"""Seconds between attempts while the log takes no commits: 1, 2, 4, ... 32, then 60 each.

No jitter: the disk is dom0's own, so there is no herd of clients to spread out,
and a fixed schedule is what an operator can read off the log.
"""

Listener = Callable[[bool], None]
"""Told ``writable`` at each transition (False when commits start failing, True when back)."""


class LogHealth:
    """dom0's log as writable or not, with the backoff that paces attempts while it is not."""

    def __init__(
        self,
        clock: Clock,
        events: EventLog,
        backoff: BackoffPolicy = DEFAULT_COMMIT_BACKOFF,
        rng: random.Random | None = None,
        *,
        where: str = "dom0's log",
    ) -> None:
        self.writable = True
        self.error: str | None = None
        """The error of the first failed commit of the current outage (None while writable)."""
        self.failed_attempts = 0
        """Commits failed since the log stopped taking them (0 while writable)."""
        self.since: float | None = None
        """Clock time of the outage's first failed commit (None while writable)."""
        self.retry_at = 0.0
        """Clock time from which the next attempt may start."""
        self._clock = clock
        self._events = events
        self._backoff = Backoff(backoff, rng)
        self._where = where
        self._probe: asyncio.Event | None = None
        """Set when the attempt in progress ends or reports; None when none is in progress."""
        self._listeners: list[Listener] = []

    @property
    def backoff(self) -> BackoffPolicy:
        return self._backoff.policy

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    @contextlib.asynccontextmanager
    async def attempt(self, stopping: asyncio.Event) -> AsyncIterator[bool]:
        """Around a pass that may commit: yields False if dom0 stops before the pass's turn.

        While the log is writable, the pass goes at once. Otherwise it waits until
        the backoff's delay since the last failure is over and no other attempt is
        in progress; then it is the attempt. A pass that ends without committing (say,
        its GET found nothing) hands the turn on to the next waiting pass.
        """
        if self.writable:
            yield True
            return
        go, probe = await self._take_turn(stopping)
        try:
            yield go
        finally:
            if probe is not None:
                self._end_probe(probe)

    async def _take_turn(self, stopping: asyncio.Event) -> tuple[bool, asyncio.Event | None]:
        while not self.writable:
            waiting: Awaitable[object]
            if self._probe is not None:  # another pass is the attempt: wait for its outcome
                waiting = self._probe.wait()
            else:
                delay = self.retry_at - self._clock.now()
                if delay <= 0:
                    if stopping.is_set():
                        return False, None
                    self._probe = asyncio.Event()
                    return True, self._probe
                waiting = self._clock.sleep(delay)
            if not await wait_unless_stopped(waiting, stopping):
                return False, None
        return True, None

    def _end_probe(self, probe: asyncio.Event) -> None:
        if self._probe is probe:
            self._probe = None
        probe.set()

    def commit_failed(self, error: BaseException, record_type: str) -> float:
        """A commit failed: count it, report it, and return the delay before the next attempt."""
        now = self._clock.now()
        delay = self._backoff.next_delay()
        self.retry_at = now + delay
        self.failed_attempts += 1
        self._events.emit(
            "commit_failed",
            type=record_type,
            error=str(error),
            attempt=self.failed_attempts,
            retry_in=round(delay, 3),
        )
        if self.writable:
            self.writable = False
            self.error = str(error)
            self.since = now
            log.error(
                "%s takes no commits (%s: %s); records stay pending in firmware, retrying "
                "in %.3gs, backing off up to %.3gs",
                self._where,
                record_type,
                error,
                delay,
                self.backoff.maximum,
            )
            self._events.emit(
                "log_unwritable", error=str(error), type=record_type, retry_in=round(delay, 3)
            )
            self._tell(False)
        else:
            log.debug(
                "%s still takes no commits (%s, attempt %d: %s); next attempt in %.3gs",
                self._where,
                record_type,
                self.failed_attempts,
                error,
                delay,
            )
        if self._probe is not None:
            self._end_probe(self._probe)
        return delay

    def commit_succeeded(self) -> None:
        """A commit went through: the log is writable (again)."""
        if self.writable:
            return
        assert self.since is not None
        seconds = self._clock.now() - self.since
        failed = self.failed_attempts
        self.writable = True
        self.error = None
        self.since = None
        self.failed_attempts = 0
        self.retry_at = 0.0
        self._backoff.reset()
        log.info(
            "%s takes commits again after %.1fs and %d failed attempts",
            self._where,
            seconds,
            failed,
        )
        self._events.emit("log_writable", seconds=round(seconds, 3), failed_attempts=failed)
        self._tell(True)
        if self._probe is not None:
            self._end_probe(self._probe)

    def _tell(self, writable: bool) -> None:
        for listener in self._listeners:
            listener(writable)
