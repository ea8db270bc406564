"""SalService over gRPC: authorize, validate, call the pCPU firmware, answer in SAL terms.

Refusals are google.rpc.Status errors with one ErrorInfo (xenmca.rpc.errors);
a refused request changes nothing. SAL outcomes that are not errors in SAL
(nothing pending) travel as ``sal_status`` -5 in a successful reply.

In plain SAL mode (the firmware's ``sal_mode``) the replies leave the extensions
at zero: ClearStateInfo's ``remaining`` and ``already_cleared``, SetInterruptMask's
``pending`` and ``created``; DescribePcpu is refused to the coordinator (auth.py).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from xenmca.pcpu import records, validation
from xenmca.pcpu.auth import authorize, refuse_extension_to_xen
from xenmca.pcpu.firmware import PcpuFirmware
from xenmca.pcpu.interrupts import SubscriptionLagged
from xenmca.pcpu.model import PacedInjectionState, SalMode
from xenmca.rpc import hop_trace
from xenmca.rpc.errors import RequestError, abort
from xenmca.rpc.identity import TokenBook
from xenmca.rpc.stream_writer import write_stream
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.vocab import SalStatus

log = logging.getLogger(__name__)

SERVICE_NAME: str = sal_pb2.DESCRIPTOR.services_by_name["SalService"].full_name

SAL_MODE_VALUES: dict[SalMode, int] = {
    SalMode.EXTENDED: sal_pb2.SAL_MODE_EXTENDED,
    SalMode.PLAIN: sal_pb2.SAL_MODE_PLAIN,
}
"""DescribePcpuResponse.sal_mode of each SalMode."""

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def _refusals(handler: Handler) -> Handler:
    """Authorize the call, and turn RequestError (and store failures) into rich statuses."""

    @functools.wraps(handler)
    async def wrapper(self: SalServicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            authorize(context, self.tokens, handler.__name__)
            firmware = self.firmware
            refuse_extension_to_xen(
                context, self.tokens, handler.__name__, firmware.pcpu, firmware.sal_mode
            )
            return await handler(self, request, context)
        except RequestError as exc:
            await abort(context, exc)
        except sqlite3.Error as exc:
            log.exception("pCPU %d: store write failed", self.firmware.pcpu)
            await abort(
                context,
                RequestError(
                    grpc.StatusCode.INTERNAL,
                    "STORE_WRITE_FAILED",
                    f"pCPU {self.firmware.pcpu}: the record store could not commit: {exc}",
                ),
            )

    return wrapper  # type: ignore[return-value]


class SalServicer(sal_grpc.SalServiceServicer):  # type: ignore[misc]
    """SalService of one pCPU."""

    def __init__(self, firmware: PcpuFirmware, tokens: TokenBook | None = None) -> None:
        self.firmware = firmware
        self.tokens = tokens

    @_refusals
    async def GetStateInfo(
        self, request: sal_pb2.GetStateInfoRequest, context: grpc.aio.ServicerContext
    ) -> sal_pb2.GetStateInfoResponse:
        hop_trace.mark("pcpu.get.in")
        record_type = validation.record_type(request.type)
        stored = self.firmware.store.current(record_type)
        if stored is None:
            return sal_pb2.GetStateInfoResponse(sal_status=SalStatus.NO_INFORMATION)
        reply = sal_pb2.GetStateInfoResponse(
            sal_status=SalStatus.SUCCESS, record=records.error_record(self.firmware.pcpu, stored)
        )
        hop_trace.mark("pcpu.get.out")
        return reply

    @_refusals
    async def GetStateInfoSize(
        self, request: sal_pb2.GetStateInfoSizeRequest, context: grpc.aio.ServicerContext
    ) -> sal_pb2.GetStateInfoSizeResponse:
        record_type = validation.record_type(request.type)
        return sal_pb2.GetStateInfoSizeResponse(
            sal_status=SalStatus.SUCCESS, size=self.firmware.max_record_size(record_type)
        )

    @_refusals
    async def ClearStateInfo(
        self, request: sal_pb2.ClearStateInfoRequest, context: grpc.aio.ServicerContext
    ) -> sal_pb2.ClearStateInfoResponse:
        record_type = validation.record_type(request.type)
        hop_trace.mark("pcpu.clear.in")
        record_id = request.record_id if request.HasField("record_id") else None
        outcome = await self.firmware.clear(record_type, record_id)
        hop_trace.mark("pcpu.clear.out")
        if self.firmware.plain:
            return sal_pb2.ClearStateInfoResponse(
                sal_status=outcome.sal_status, cleared_record_id=outcome.cleared_record_id
            )
        return sal_pb2.ClearStateInfoResponse(
            sal_status=outcome.sal_status,
            cleared_record_id=outcome.cleared_record_id,
            already_cleared=outcome.already_cleared,
            remaining=outcome.remaining,
        )

    @_refusals
    async def InjectError(
        self, request: sal_pb2.InjectErrorRequest, context: grpc.aio.ServicerContext
    ) -> sal_pb2.InjectErrorResponse:
        injection = validation.injection(request)
        if injection.rate_per_second > 0:
            injection_id = self.firmware.start_paced(injection)
            return sal_pb2.InjectErrorResponse(accepted=injection.count, injection_id=injection_id)
        outcome = await self.firmware.inject(injection)
        return sal_pb2.InjectErrorResponse(
            accepted=injection.count,
            stored=outcome.stored,
            overflowed=outcome.overflowed,
            first_record_id=outcome.first_record_id,
            last_record_id=outcome.last_record_id,
        )

    @_refusals
    async def ListInjections(
        self, request: sal_pb2.ListInjectionsRequest, context: grpc.aio.ServicerContext
    ) -> sal_pb2.ListInjectionsResponse:
        return sal_pb2.ListInjectionsResponse(
            pcpu=self.firmware.pcpu,
            injections=[_paced_injection(state) for state in self.firmware.injections()],
        )

    @_refusals
    async def CancelInjection(
        self, request: sal_pb2.CancelInjectionRequest, context: grpc.aio.ServicerContext
    ) -> sal_pb2.CancelInjectionResponse:
        injection_id = validation.injection_id(request.injection_id)
        state = await self.firmware.cancel_paced(injection_id)
        return sal_pb2.CancelInjectionResponse(injection=_paced_injection(state))

    @_refusals
    async def WatchInterrupts(
        self, request: sal_pb2.WatchInterruptsRequest, context: grpc.aio.ServicerContext
    ) -> None:
        """Stream interrupts until the caller leaves or the pCPU stops (the coordinator's).

        Initial metadata is sent once the subscription is registered: a caller that
        awaits ``call.initial_metadata()`` knows every later record reaches it. A
        caller more than the line's max_backlog interrupts behind is cut off with
        RESOURCE_EXHAUSTED / SUBSCRIBER_LAGGING.
        """
        subscription = self.firmware.line.subscribe()

        async def messages() -> AsyncIterator[sal_pb2.WatchInterruptsResponse]:
            async for interrupt in subscription:
                response = sal_pb2.WatchInterruptsResponse(
                    pcpu=interrupt.pcpu,
                    type=interrupt.record_type,  # type: ignore[arg-type]
                    record_id=interrupt.record_id,
                )
                response.raised_at.FromNanoseconds(interrupt.raised_wall_ns)
                hop_trace.mark("pcpu.irq.send")
                yield response

        def lagging() -> RequestError:
            return RequestError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "SUBSCRIBER_LAGGING",
                f"pCPU {self.firmware.pcpu}: {subscription.lagged_error()}; resubscribe and "
                "read the pending records",
                {"max_backlog": str(self.firmware.line.max_backlog)},
            )

        try:
            await context.send_initial_metadata(())
            # Cut off at once when lagging, even while a write waits for a reader that stopped.
            await write_stream(context, messages(), subscription.cut_off, lagging)
        except SubscriptionLagged:
            raise lagging() from None
        finally:
            subscription.close()

    @_refusals
    async def SetInterruptMask(
        self, request: sal_pb2.SetInterruptMaskRequest, context: grpc.aio.ServicerContext
    ) -> sal_pb2.SetInterruptMaskResponse:
        record_type = validation.record_type(request.type)
        previously, pending = self.firmware.set_mask(record_type, request.masked)
        if self.firmware.plain:
            return sal_pb2.SetInterruptMaskResponse(previously_masked=previously)
        # In the same step as the mask (no await between): the poller's baseline of "new".
        created = self.firmware.store.state(record_type).counters.created
        return sal_pb2.SetInterruptMaskResponse(
            previously_masked=previously, pending=pending, created=created
        )

    @_refusals
    async def DescribePcpu(
        self, request: sal_pb2.DescribePcpuRequest, context: grpc.aio.ServicerContext
    ) -> sal_pb2.DescribePcpuResponse:
        limit = validation.pending_ids_limit(request.pending_ids_limit)
        firmware = self.firmware
        response = sal_pb2.DescribePcpuResponse(
            pcpu=firmware.pcpu,
            next_record_id=firmware.store.next_record_id,
            durable=firmware.store.durable,
            sal_mode=SAL_MODE_VALUES[firmware.sal_mode],  # type: ignore[arg-type]
        )
        for state in firmware.describe(limit):
            response.types.add(
                type=state.record_type,
                pending=state.pending,
                capacity=state.capacity,
                masked=state.masked,
                created=state.counters.created,
                cleared=state.counters.cleared,
                overflowed=state.counters.overflowed,
                interrupts_raised=state.counters.interrupts_raised,
                oldest_record_id=state.oldest_record_id,
                newest_record_id=state.newest_record_id,
                max_record_size=firmware.max_record_size(state.record_type),
                pending_record_ids=state.pending_record_ids,
            )
        return response


def _paced_injection(state: PacedInjectionState) -> sal_pb2.PacedInjection:
    message = sal_pb2.PacedInjection(
        injection_id=state.injection_id,
        type=state.record_type,  # type: ignore[arg-type]
        severity=state.severity,  # type: ignore[arg-type]
        count=state.count,
        created=state.created,
        stored=state.stored,
        overflowed=state.overflowed,
        rate_per_second=state.rate_per_second,
    )
    message.started_at.FromNanoseconds(state.started_wall_ns)
    return message


def add_to_server(servicer: SalServicer, server: grpc.aio.Server) -> None:
    sal_grpc.add_SalServiceServicer_to_server(servicer, server)
