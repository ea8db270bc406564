"""dom0's reads through the coordinator (trapped SAL_GET_STATE_INFO and _SIZE), retried.

Both are reads: a retry after a lost call or a lost reply asks again for the same
oldest record (or the same size), so they are retried on UNAVAILABLE and
DEADLINE_EXCEEDED. CLEAR is not here: whether it may be retried depends on
whether it names the record (the xenmca handler) or not (linux-salinfo).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
from xenmca.rpc.clock import Clock
from xenmca.rpc.retry import RETRYABLE_CODES, RetryPolicy, call_with_retry

Metadata = tuple[tuple[str, str], ...]
T = TypeVar("T")


async def get_state_info(
    stub: hv_grpc.HypervisorServiceStub,
    record_type: int,
    metadata: Metadata,
    retry: RetryPolicy,
    clock: Clock,
) -> hv_pb2.GetStateInfoResponse:
    """SAL_GET_STATE_INFO(type): the oldest record of the type, or its SAL status."""
    request = hv_pb2.GetStateInfoRequest(type=record_type)  # type: ignore[arg-type]
    return await _read(stub.GetStateInfo, request, metadata, retry, clock)


async def get_state_info_size(
    stub: hv_grpc.HypervisorServiceStub,
    record_type: int,
    metadata: Metadata,
    retry: RetryPolicy,
    clock: Clock,
) -> hv_pb2.GetStateInfoSizeResponse:
    """SAL_GET_STATE_INFO_SIZE(type): the largest record of the type, or its SAL status."""
    request = hv_pb2.GetStateInfoSizeRequest(type=record_type)  # type: ignore[arg-type]
    return await _read(stub.GetStateInfoSize, request, metadata, retry, clock)


async def _read(
    method: Callable[..., Awaitable[T]],
    request: object,
    metadata: Metadata,
    retry: RetryPolicy,
    clock: Clock,
) -> T:
    reply, _ = await call_with_retry(
        lambda attempt_timeout: method(request, metadata=metadata, timeout=attempt_timeout),
        retry,
        retryable=RETRYABLE_CODES,
        clock=clock,
    )
    return reply
