"""RunningDom0: dom0's real logger against a coordinator, its durable log in a file of the test's.

It can be stopped (gracefully, or at once as a crash would: passes in progress are
cancelled wherever they are) and started again on the same log, as a new dom0
instance that attaches in its place. Its events (``record_committed``,
``record_cleared``, ...) go to the bed's EventWatch with component ``dom0``.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from xenmca.dom0.log_store import LogStore
from xenmca.dom0.logger import Dom0Logger
from xenmca.dom0.pacing import PollSettings
from xenmca.rpc.events import EventLog
from xenmca.testing.events import EventWatch
from xenmca.vocab import RecordType

FAST_CPE_POLL = PollSettings(0.05, 0.5)
"""dom0 polls CPE between 50 and 500 ms (the ``fast`` preset's bounds; Linux: 2 to 15 min)."""


class RunningDom0:
    """dom0's logger on the coordinator at xen_address, logging to db_path.

    ``policy`` is a dom0 policy name (``xenmca``: commit, then CLEAR by record id;
    ``linux-salinfo``: what Linux ia64 did). ``cpe_poll`` None: dom0 does not poll
    CPE. Each start is a new instance (``dom0-1``, ``dom0-2``, ...) with its own
    seeded backoff.
    """

    def __init__(
        self,
        xen_address: str,
        db_path: Path,
        token: str | None,
        watch: EventWatch | None = None,
        *,
        policy: str = "xenmca",
        cpe_poll: PollSettings | None = FAST_CPE_POLL,
    ) -> None:
        self.xen_address = xen_address
        self.db_path = db_path
        self.policy = policy
        self.cpe_poll = cpe_poll
        self.starts = 0
        self.logger: Dom0Logger | None = None
        self.store: LogStore | None = None
        self._token = token
        self._events = EventLog("dom0")
        if watch is not None:
            self._events.subscribe(watch)

    @property
    def running(self) -> bool:
        return self.logger is not None

    @property
    def instance(self) -> str:
        """The running (or last) instance's name."""
        return f"dom0-{self.starts}"

    async def start(self) -> None:
        """Open the log and start a new logger instance; it attaches on its own."""
        if self.logger is not None:
            raise RuntimeError(f"{self.instance} is running: stop it first")
        self.starts += 1
        store = await LogStore.open(self.db_path)
        polled: dict[int, PollSettings] = {}
        if self.cpe_poll is not None:
            polled[RecordType.CPE] = self.cpe_poll
        logger = Dom0Logger(
            self.xen_address,
            store,
            token=self._token,
            instance=self.instance,
            events=self._events,
            polled_types=polled,
            rng=random.Random(self.starts),
            policy=self.policy,
        )
        try:
            await logger.start()
        except BaseException:
            await store.close()
            raise
        self.store, self.logger = store, logger

    async def stop(self, grace: float = 5.0) -> None:
        """Stop the logger (passes in progress get grace seconds; 0: cancelled at once)."""
        logger, store = self.logger, self.store
        self.logger = self.store = None
        if logger is not None:
            await logger.stop(grace)
        if store is not None:
            await store.close()

    async def restart(self, grace: float = 0.0) -> None:
        """Stop (at once by default, as a crash) and start a new instance on the same log."""
        await self.stop(grace)
        await self.start()


@asynccontextmanager
async def running_dom0(
    xen_address: str,
    db_path: Path,
    token: str | None,
    watch: EventWatch,
    *,
    policy: str = "xenmca",
    cpe_poll: PollSettings | None = FAST_CPE_POLL,
) -> AsyncIterator[RunningDom0]:
    """dom0 started and attached to the coordinator (seen in watch); stopped on the way out."""
    dom0 = RunningDom0(xen_address, db_path, token, watch, policy=policy, cpe_poll=cpe_poll)
    await dom0.start()
    try:
        await watch.wait_for("dom0_attached", instance=dom0.instance)
        yield dom0
    finally:
        await dom0.stop()
