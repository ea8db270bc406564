"""linux-salinfo's trapped SAL calls, made as Linux makes them (mca.c's ia64_log_get and
ia64_sal_clear_state_info): GET, and CLEAR of whatever record is current.
"""

from __future__ import annotations

import logging
import time

import grpc

from xenmca.dom0.handler import Outcome
from xenmca.dom0.policy import Dom0Context
from xenmca.dom0.trapped_calls import get_state_info
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.record.v1 import record_pb2
from xenmca.rpc.retry import RetryPolicy
from xenmca.vocab import SalStatus, type_name

log = logging.getLogger(__name__)


def _ids(record: record_pb2.ErrorRecord) -> dict[str, object]:
    return {"pcpu": record.pcpu, "type": type_name(record.type), "record_id": record.record_id}


class LinuxSalCalls:
    """dom0's trapped SAL calls as Linux makes them: GET, and CLEAR of the current record."""

    def __init__(self, context: Dom0Context) -> None:
        self._ctx = context
        self._retry = RetryPolicy(
            attempt_timeout=context.call_timeout,
            overall_timeout=3 * context.call_timeout,
            max_attempts=5,
        )

    async def get(
        self, record_type: int, caller: str
    ) -> tuple[record_pb2.ErrorRecord | None, Outcome]:
        """SAL_GET_STATE_INFO; (record, Outcome.READ), or (None, why there is none)."""
        ctx, name = self._ctx, type_name(record_type)
        ctx.counters.gets += 1
        started = time.perf_counter()
        try:
            got = await get_state_info(ctx.stub, record_type, ctx.metadata, self._retry, ctx.clock)
        except grpc.aio.AioRpcError as exc:
            self._call_failed(name, caller, exc)
            return None, Outcome.FAILED
        if got.sal_status == SalStatus.NO_INFORMATION:
            return None, Outcome.NOTHING
        if got.sal_status == SalStatus.CALL_ERROR:
            ctx.counters.unreachable += 1
            return None, Outcome.UNREACHABLE
        if got.sal_status != SalStatus.SUCCESS:
            log.warning("%s GET: unexpected SAL status %d", name, got.sal_status)
            return None, Outcome.NOTHING
        get_ms = (time.perf_counter() - started) * 1000
        ctx.events.emit(
            "record_read",
            **_ids(got.record),
            by_ipi=got.by_ipi,
            get_ms=round(get_ms, 3),
            caller=caller,
        )
        return got.record, Outcome.READ

    async def clear(self, record: record_pb2.ErrorRecord, caller: str) -> int | None:
        """SAL_CLEAR_STATE_INFO(type), meant for record; the SAL status, None if the call failed."""
        ctx, ids = self._ctx, _ids(record)
        ctx.events.emit("record_clear_requested", **ids, caller=caller)
        ctx.counters.clears += 1
        try:
            # No record id (real SAL has none), hence one attempt: if a reply were lost,
            # a retry would clear whichever record had become current meanwhile.
            cleared = await ctx.stub.ClearStateInfo(
                hv_pb2.ClearStateInfoRequest(type=record.type),
                metadata=ctx.metadata,
                timeout=ctx.call_timeout,
            )
        except grpc.aio.AioRpcError as exc:
            self._call_failed(str(ids["type"]), caller, exc)
            return None
        ctx.events.emit(
            "record_cleared",
            **ids,
            sal_status=cleared.sal_status,
            by_ipi=cleared.by_ipi,
            cleared_record_id=cleared.cleared_record_id,
            caller=caller,
        )
        if cleared.sal_status == SalStatus.CALL_ERROR:
            ctx.counters.unreachable += 1
        return int(cleared.sal_status)

    def _call_failed(self, name: str, caller: str, exc: grpc.aio.AioRpcError) -> None:
        self._ctx.counters.call_errors += 1
        log.debug("%s %s: call failed: %s %s", name, caller, exc.code().name, exc.details())
        self._ctx.events.emit("call_failed", type=name, code=exc.code().name, caller=caller)
