"""One attached dom0: the outbox of virtual interrupts its AttachDom0 stream sends."""

from __future__ import annotations

import asyncio

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2


class Dom0Session:
    """dom0 vCPU0's virtual interrupt line while one dom0 is attached."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        self._outbox: asyncio.Queue[hv_pb2.AttachDom0Response | None] = asyncio.Queue()
        self.closed = False

    def inject(self, interrupt: hv_pb2.AttachDom0Response) -> None:
        if not self.closed:
            self._outbox.put_nowait(interrupt)

    def close(self) -> None:
        """End the stream (a newer dom0 took over, or the coordinator stops)."""
        if not self.closed:
            self.closed = True
            self._outbox.put_nowait(None)

    async def next_interrupt(self) -> hv_pb2.AttachDom0Response | None:
        """The next virtual interrupt to send, or None when the session is over."""
        return await self._outbox.get()
