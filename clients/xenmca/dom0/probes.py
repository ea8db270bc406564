"""dom0's health for probes (``--health-listen``): NOT_SERVING while its log takes no commits.

dom0 is a gRPC client only, so its health is served on the plaintext
health-only listener of ``xenmca.rpc.health_listener``. Two names answer:
``""`` (dom0 as a whole) and ``xenmca.dom0.log`` (its durable log).
grpc.health.v1 carries a status and no text, so the named service is the
reason: both turn NOT_SERVING when a commit fails and SERVING when one succeeds
again (the error itself is in event ``log_unwritable`` and dom0's ERROR line).
``""`` is also NOT_SERVING until dom0 has started and while it stops. A lost
coordinator does not count: dom0 re-attaches by itself, and the fault is not
dom0's.
"""

from __future__ import annotations

import asyncio

from grpc_health.v1 import health_pb2

from xenmca.dom0.log_health import LogHealth
from xenmca.rpc.health_listener import HealthListener

LOG_SERVICE = "xenmca.dom0.log"
"""The health service name of dom0's durable log."""

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Dom0Probes:
    """The health listener, kept in step with the log's health."""

    def __init__(self, listener: HealthListener, log_health: LogHealth) -> None:
        self.listener = listener
        self._log_health = log_health
        self._running = False
        self._lock = asyncio.Lock()
        self._updates: set[asyncio.Task[None]] = set()
        log_health.subscribe(self._changed)

    @property
    def address(self) -> str:
        return self.listener.address

    async def start(self) -> None:
        """Listen; NOT_SERVING until serving()."""
        await self.listener.start()
        await self._publish()

    async def serving(self) -> None:
        """dom0 has started: report the log's health from now on."""
        self._running = True
        await self._publish()

    async def stop(self) -> None:
        """NOT_SERVING, then stop listening."""
        self._running = False
        await self._publish()
        if self._updates:
            await asyncio.gather(*self._updates, return_exceptions=True)
        await self.listener.stop(grace=None)

    def _changed(self, writable: bool) -> None:
        task = asyncio.get_running_loop().create_task(self._publish())
        self._updates.add(task)
        task.add_done_callback(self._updates.discard)

    async def _publish(self) -> None:
        # The state is read under the lock, so the last publish sets the latest state.
        async with self._lock:
            writable = self._log_health.writable
            log_status = _SERVING if writable else _NOT_SERVING
            overall = _SERVING if writable and self._running else _NOT_SERVING
            await self.listener.health.set(LOG_SERVICE, log_status)
            await self.listener.health.set("", overall)
