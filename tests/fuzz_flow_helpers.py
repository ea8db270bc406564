"""Building blocks of the flow state machine (test_fuzz_flow.py): the bed's pCPUs and
capacity, the record types of the flow, the callers that are not dom0 or not Xen, and
dom0's AttachDom0 stream drained into a queue."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc
from flow_harness import DOMU
from fuzz_strategies import Credential, credentials
from hypothesis import strategies as st

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.record.v1 import record_pb2
from xenmca.rpc.identity import DOM0, OPERATOR, XEN

if TYPE_CHECKING:
    from test_fuzz_flow import FlowMachine

PCPUS = (0, 1, 2)
CAPACITY = 6
"""Small, so that storms overflow the firmware stores (counted, never lost)."""
CMC, CPE = record_pb2.RECORD_TYPE_CMC, record_pb2.RECORD_TYPE_CPE
FLOW_TYPES = (CMC, CMC, CPE, record_pb2.RECORD_TYPE_MCA)
not_dom0 = st.one_of(
    st.sampled_from([Credential("token", i) for i in (OPERATOR, XEN, DOMU)]),
    credentials.filter(lambda c: c.identity != DOM0),
)
not_xen = credentials.filter(lambda c: c.identity != XEN)


class Dom0Stream:
    """dom0's AttachDom0 stream, drained into a queue by a task on the bed's loop."""

    def __init__(self, machine: FlowMachine, instance: str) -> None:
        flow = machine.bed.flow
        self.call = flow.hv.AttachDom0(
            hv_pb2.AttachDom0Request(instance=instance), metadata=flow.dom0_md
        )
        self.interrupts: asyncio.Queue[hv_pb2.AttachDom0Response] = asyncio.Queue()
        self.error: grpc.aio.AioRpcError | None = None
        self.task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            async for interrupt in self.call:
                self.interrupts.put_nowait(interrupt)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.error = error

    async def close(self) -> None:
        self.call.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        assert self.error is None, self.error
