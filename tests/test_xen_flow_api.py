"""The hypervisor's calls through real servers, as the caller sees them: a non-dom0 caller
reads and changes nothing, GetStateInfoSize is one record's size, bad requests get
INVALID_ARGUMENT (or PERMISSION_DENIED) with ErrorInfo.
"""

from __future__ import annotations

import grpc
import pytest
from flow_harness import (
    CMC,
    DOMU,
    FlowBed,
    ScriptedDom0,
)

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.identity import OPERATOR, XEN
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2


@pytest.mark.xenmca(pcpus=1)
async def test_non_dom0_caller_reads_nothing_and_changes_nothing(
    xenmca_coordinator: FlowBed,
) -> None:
    bed = xenmca_coordinator
    await bed.inject(0)
    dom0 = ScriptedDom0(bed)
    await dom0.next_interrupt()
    got = await bed.hv.GetStateInfo(hv_pb2.GetStateInfoRequest(type=CMC), metadata=bed.md(DOMU))
    assert got.sal_status == -5 and not got.HasField("record")
    cleared = await bed.hv.ClearStateInfo(
        hv_pb2.ClearStateInfoRequest(type=CMC), metadata=bed.md(DOMU)
    )
    assert cleared.sal_status == -5
    size = await bed.hv.GetStateInfoSize(
        hv_pb2.GetStateInfoSizeRequest(type=CMC), metadata=bed.md(DOMU)
    )
    assert size.sal_status == -5 and size.size == 0
    assert bed.coordinator.counters.refused_calls == 3
    assert (await bed.pending(0)).pending == 1
    assert bed.coordinator.queues[CMC].in_flight.record_id == 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bed.hv.GetStateInfo(hv_pb2.GetStateInfoRequest(type=CMC))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info_of(caught.value).reason == "MISSING_CREDENTIALS"
    # dom0 itself still reads it.
    assert (await dom0.get()).sal_status == 0
    await dom0.detach()


@pytest.mark.xenmca(pcpus=4)
async def test_get_state_info_size_is_one_record_not_times_pcpus(
    xenmca_coordinator: FlowBed,
) -> None:
    bed = xenmca_coordinator
    size = await bed.hv.GetStateInfoSize(
        hv_pb2.GetStateInfoSizeRequest(type=CMC), metadata=bed.dom0_md
    )
    sal_size = await bed.sal(0).GetStateInfoSize(
        sal_pb2.GetStateInfoSizeRequest(type=CMC), metadata=bed.md(XEN)
    )
    assert size.sal_status == 0 and size.size == sal_size.size > 0


@pytest.mark.xenmca(pcpus=2)
async def test_bad_requests_get_invalid_argument_with_error_info(
    xenmca_coordinator: FlowBed,
) -> None:
    bed = xenmca_coordinator
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bed.hv.GetStateInfo(hv_pb2.GetStateInfoRequest(type=0), metadata=bed.dom0_md)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info_of(caught.value).reason == "INVALID_RECORD_TYPE"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bed.hv.SetVcpuPlacement(
            hv_pb2.SetVcpuPlacementRequest(pcpu=7), metadata=bed.md(OPERATOR)
        )
    assert error_info_of(caught.value).reason == "UNKNOWN_PCPU"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bed.hv.SetVcpuPlacement(hv_pb2.SetVcpuPlacementRequest(pcpu=1), metadata=bed.dom0_md)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert bed.coordinator.vcpu0_pcpu == 0
    moved = await bed.hv.SetVcpuPlacement(
        hv_pb2.SetVcpuPlacementRequest(pcpu=1), metadata=bed.md(OPERATOR)
    )
    assert moved.previous_pcpu == 0 and bed.coordinator.vcpu0_pcpu == 1
