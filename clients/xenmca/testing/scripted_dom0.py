"""ScriptedDom0: a dom0 a test drives by hand, call by call (attach, then GET and CLEAR).

For the coordinator's side of the seed's flow, step for step: the test reads each
virtual interrupt and decides what dom0 asks next, or leaves mid-way (``detach``).
"""

from __future__ import annotations

import asyncio

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.testing.flow import CMC, FlowBed


class ScriptedDom0:
    """dom0 driven step by step by a test: attach, then GET/CLEAR by hand."""

    def __init__(self, bed: FlowBed, instance: str = "scripted") -> None:
        self.bed = bed
        self.call = bed.hv.AttachDom0(
            hv_pb2.AttachDom0Request(instance=instance), metadata=bed.dom0_md
        )

    async def next_interrupt(self, within: float = 10.0) -> hv_pb2.AttachDom0Response:
        """The next virtual interrupt (TimeoutError when none comes within seconds)."""
        async with asyncio.timeout(within):
            reply: hv_pb2.AttachDom0Response = await self.call.read()
            return reply

    async def get(self, record_type: int = CMC) -> hv_pb2.GetStateInfoResponse:
        return await self.bed.hv.GetStateInfo(
            hv_pb2.GetStateInfoRequest(type=record_type),  # type: ignore[arg-type]
            metadata=self.bed.dom0_md,
        )

    async def clear(
        self, record_id: int | None, record_type: int = CMC, carry_for: str = ""
    ) -> hv_pb2.ClearStateInfoResponse:
        """CLEAR by record id, or the current record when record_id is None; with carry_for
        (the instance attached as), the next virtual interrupt comes on the reply."""
        request = hv_pb2.ClearStateInfoRequest(
            type=record_type,  # type: ignore[arg-type]
            carry_interrupt_for=carry_for,
        )
        if record_id is not None:
            request.record_id = record_id
        return await self.bed.hv.ClearStateInfo(request, metadata=self.bed.dom0_md)

    async def detach(self) -> None:
        """Leave: the attach stream is cancelled, as when dom0 goes away."""
        self.call.cancel()
