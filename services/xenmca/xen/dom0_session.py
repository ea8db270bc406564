"""One attached dom0: the bounded outbox of virtual interrupts its AttachDom0 stream sends.

Delivery keeps few virtual interrupts outstanding (one in flight per type, plus
the watchdog's re-injections), and gRPC's own buffers take what dom0 has not read
yet; the outbox only grows when those are full, that is when dom0 stopped
reading. Beyond ``max_outbox`` the session ends as lagging rather than growing:
the stream is cut off with RESOURCE_EXHAUSTED at once (``cut_off``, even while a
write waits for dom0), and detaching gives the entries dom0 held back to the
queues for the next dom0 that attaches.

A virtual interrupt raised while dom0 is inside a trapped SAL call is sent after
that call's reply (``held``), as Xen/ia64 delivers a pending event only on the
way back to the guest: ia64_leave_kernel (linux-xen/entry.S) calls reflect_event
(xen/faults.c) after the hypercall, never in the middle of it. It also keeps the
interrupt's write off dom0's serial path: the CLEAR's reply, which dom0's next
GET waits for, goes out first.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.rpc import hop_trace

DEFAULT_MAX_OUTBOX = 256
"""Virtual interrupts waiting to be sent to one dom0 before it is cut off."""


class Dom0Session:
    """dom0 vCPU0's virtual interrupt line while one dom0 is attached."""

    def __init__(self, instance: str, max_outbox: int = DEFAULT_MAX_OUTBOX) -> None:
        self.instance = instance
        self.max_outbox = max_outbox
        self._outbox: deque[hv_pb2.AttachDom0Response] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.lagging = False
        """Set when the session ended because dom0 left max_outbox interrupts unread."""
        self.cut_off = asyncio.Event()
        """Set with lagging, for a stream writer blocked on a dom0 that does not read."""
        self._holds = 0

    @property
    def waiting(self) -> int:
        """Virtual interrupts injected and not yet handed to the stream."""
        return len(self._outbox)

    def inject(self, interrupt: hv_pb2.AttachDom0Response) -> None:
        if self.closed:
            return
        if len(self._outbox) >= self.max_outbox:
            self.lagging = True
            self._outbox.clear()
            self.cut_off.set()
            self.close()
            return
        self._outbox.append(interrupt)
        self._wake()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep injected interrupts in the outbox until the block (a trapped call) is over.

        The handler returns its reply in the same step of the event loop as it leaves
        the block, and the stream's writer runs only at a later one: the reply is
        sent first. Holds nest (dom0's CMC and CPE handlers trap concurrently).
        """
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            if self._outbox:
                self._wake()

    def close(self) -> None:
        """End the stream (a newer dom0 took over, the coordinator stops, or dom0 lags)."""
        self.closed = True
        self._wake(even_held=True)

    def _wake(self, even_held: bool = False) -> None:
        if self._holds and not even_held:
            return
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def interrupts(self) -> AsyncIterator[hv_pb2.AttachDom0Response]:
        """Every virtual interrupt to send, until the session is over."""
        while (interrupt := await self.next_interrupt()) is not None:
            hop_trace.mark("xen.virq.send")
            yield interrupt

    async def next_interrupt(self) -> hv_pb2.AttachDom0Response | None:
        """The next virtual interrupt to send, or None when the session is over.

        What was injected before a close is still sent (a dom0 replaced by another
        gets its last interrupts), except after a lagging close, which drops them.
        """
        while not self._outbox or (self._holds and not self.closed):
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._outbox.popleft()
