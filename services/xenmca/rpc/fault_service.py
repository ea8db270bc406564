"""FaultService: an operator adds, lists and clears a process's per-RPC fault rules.

Only identity "operator" may call it whenever the caller is identified (a
client certificate over mutual TLS, or a TokenBook is configured; no valid
credential: UNAUTHENTICATED; another identity: PERMISSION_DENIED); with
neither, anyone may (a development setup). Bad rules get INVALID_ARGUMENT with an
ErrorInfo naming the field, and nothing is added.
"""

from __future__ import annotations

import grpc

from xenmca.fault.v1 import fault_service_pb2 as fault_pb2
from xenmca.fault.v1 import fault_service_pb2_grpc as fault_grpc
from xenmca.rpc import errors
from xenmca.rpc.events import EventLog
from xenmca.rpc.fault_rules import FaultRuleError, FaultSpec
from xenmca.rpc.faults import FaultInjector, TooManyFaults
from xenmca.rpc.identity import OPERATOR, TokenBook, require_identity

SERVICE_NAME = fault_pb2.DESCRIPTOR.services_by_name["FaultService"].full_name


def authorize(context: grpc.aio.ServicerContext, book: TokenBook | None, method: str) -> None:
    """Raise RequestError unless the caller is the operator (open when no rule applies)."""
    require_identity(context, book, method, OPERATOR)


class FaultServicer(fault_grpc.FaultServiceServicer):
    """The FaultService of one server; the injector may be shared with other servers."""

    def __init__(
        self,
        injector: FaultInjector,
        tokens: TokenBook | None = None,
        events: EventLog | None = None,
    ) -> None:
        self.injector = injector
        self.tokens = tokens
        self.events = events

    async def _authorize(self, context: grpc.aio.ServicerContext, method: str) -> None:
        try:
            authorize(context, self.tokens, method)
        except errors.RequestError as exc:
            await errors.abort(context, exc)

    async def AddFault(
        self, request: fault_pb2.AddFaultRequest, context: grpc.aio.ServicerContext
    ) -> fault_pb2.AddFaultResponse:
        await self._authorize(context, "AddFault")
        if not request.HasField("rule"):
            await errors.abort(context, errors.invalid_argument("MISSING_RULE", "rule is required"))
        try:
            spec = FaultSpec.from_proto(request.rule)
            self.injector.check_target(spec)
            fault_id = self.injector.add(spec)
        except FaultRuleError as exc:
            await errors.abort(context, exc.request_error())
        except TooManyFaults as exc:
            await errors.abort(
                context,
                errors.RequestError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "TOO_MANY_FAULTS",
                    str(exc),
                    {"max_rules": str(self.injector.max_rules)},
                ),
            )
        if self.events is not None:
            self.events.emit(
                "fault_added",
                fault_id=fault_id,
                method=spec.method,
                pcpu=spec.pcpu,
                action=spec.action.label,
                delay_s=spec.delay,
                count=spec.count,
                skip=spec.skip,
                duration_s=spec.duration,
            )
        return fault_pb2.AddFaultResponse(fault_id=fault_id)

    async def ClearFaults(
        self, request: fault_pb2.ClearFaultsRequest, context: grpc.aio.ServicerContext
    ) -> fault_pb2.ClearFaultsResponse:
        await self._authorize(context, "ClearFaults")
        fault_id = request.fault_id if request.HasField("fault_id") else None
        cleared = self.injector.clear(fault_id)
        if self.events is not None:
            self.events.emit("faults_cleared", fault_id=fault_id, cleared=cleared)
        return fault_pb2.ClearFaultsResponse(cleared=cleared)

    async def ListFaults(
        self, request: fault_pb2.ListFaultsRequest, context: grpc.aio.ServicerContext
    ) -> fault_pb2.ListFaultsResponse:
        await self._authorize(context, "ListFaults")
        return fault_pb2.ListFaultsResponse(
            faults=[state.to_proto() for state in self.injector.list()]
        )


def add_to_server(servicer: FaultServicer, server: grpc.aio.Server) -> None:
    fault_grpc.add_FaultServiceServicer_to_server(servicer, server)
