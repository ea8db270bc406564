"""HypervisorService over the coordinator: identity checks, validation, and the server seam."""

from __future__ import annotations

import asyncio
import logging

import grpc

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
from xenmca.record.v1 import record_pb2
from xenmca.rpc import errors, hop_trace
from xenmca.rpc.faults import FaultInjector
from xenmca.rpc.identity import (
    DOM0,
    OPERATOR,
    Caller,
    TokenBook,
    authenticate,
    unauthenticated,
)
from xenmca.rpc.server import BuiltServer, ServiceBinding, build_server
from xenmca.rpc.stream_writer import write_stream
from xenmca.vocab import SalStatus, type_name
from xenmca.xen.coordinator import Coordinator
from xenmca.xen.describe import describe

log = logging.getLogger(__name__)

SERVICE_NAME = hv_pb2.DESCRIPTOR.services_by_name["HypervisorService"].full_name
_VALID_TYPES = frozenset(v for v in record_pb2.RecordType.values() if v != 0)


class HypervisorServicer(hv_grpc.HypervisorServiceServicer):
    """The trapped SAL calls and the coordinator's control plane."""

    def __init__(self, coordinator: Coordinator, tokens: TokenBook | None) -> None:
        self.coordinator = coordinator
        self.tokens = tokens

    # -- identity ---------------------------------------------------------------

    async def _caller(self, context: grpc.aio.ServicerContext, method: str) -> Caller:
        """The caller; aborts UNAUTHENTICATED when rules apply and its credentials fail.

        Rules apply to a caller with a client certificate (mutual TLS) and to
        every caller when a token book is configured. With neither (a
        development setup) every caller counts as dom0 and operator.
        """
        caller = authenticate(context, self.tokens)
        if caller.enforced and caller.identity is None:
            await errors.abort(context, unauthenticated(caller, method))
        return caller

    async def _identity(self, context: grpc.aio.ServicerContext, method: str) -> str | None:
        return (await self._caller(context, method)).identity

    def _is_dom0(self, caller: Caller, call: str, rtype: int) -> bool:
        """Whether a trapped SAL call of this (authenticated) caller is dom0's; counted and
        reported when not."""
        if not caller.enforced or caller.identity == DOM0:
            return True
        self.coordinator.counters.refused_calls += 1
        self.coordinator.events.emit(
            "call_refused", call=call, identity=caller.identity, type=type_name(rtype)
        )
        return False

    async def _require(self, context: grpc.aio.ServicerContext, method: str, *allowed: str) -> None:
        caller = await self._caller(context, method)
        if caller.enforced and caller.identity not in allowed:
            await errors.abort(
                context,
                errors.RequestError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    "IDENTITY_NOT_ALLOWED",
                    f"identity {caller.identity!r} may not make this call "
                    f"(needs {' or '.join(allowed)})",
                    {"method": method, "identity": str(caller.identity)},
                ),
            )

    @staticmethod
    async def _check_type(context: grpc.aio.ServicerContext, record_type: int) -> None:
        if record_type not in _VALID_TYPES:
            await errors.abort(
                context,
                errors.invalid_argument(
                    "INVALID_RECORD_TYPE",
                    f"type must be one of MCA, INIT, CMC, CPE (got {record_type})",
                    field="type",
                ),
            )

    # -- RPCs -------------------------------------------------------------------

    async def AttachDom0(
        self, request: hv_pb2.AttachDom0Request, context: grpc.aio.ServicerContext
    ) -> None:
        await self._require(context, "AttachDom0", DOM0)
        session = await self.coordinator.attach(request.instance or context.peer())

        def lagging() -> errors.RequestError:
            return errors.RequestError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "SUBSCRIBER_LAGGING",
                f"dom0 left more than {session.max_outbox} virtual interrupts unread; "
                "attach again (the entries it held are delivered again)",
                {"max_outbox": str(session.max_outbox)},
            )

        try:
            await context.send_initial_metadata(())  # write_stream needs it sent: attached
            # Cut off at once when lagging, even while a write waits for a dom0 that stopped.
            await write_stream(context, session.interrupts(), session.cut_off, lagging)
        finally:
            await self.coordinator.detach(session)

    async def GetStateInfo(
        self, request: hv_pb2.GetStateInfoRequest, context: grpc.aio.ServicerContext
    ) -> hv_pb2.GetStateInfoResponse:
        # UNAUTHENTICATED before any argument check.
        hop_trace.mark("xen.get.in")
        caller = await self._caller(context, "GetStateInfo")
        await self._check_type(context, request.type)
        if not self._is_dom0(caller, "GetStateInfo", request.type):
            return hv_pb2.GetStateInfoResponse(sal_status=SalStatus.NO_INFORMATION)
        # Shielded: once dom0's call is trapped it completes even if dom0 goes away,
        # so the entry's state and the pCPU's firmware never disagree.
        with self.coordinator.trapped_call():
            reply = await asyncio.shield(self.coordinator.get_state_info(request.type))
        hop_trace.mark("xen.get.out")
        return reply

    async def GetStateInfoSize(
        self, request: hv_pb2.GetStateInfoSizeRequest, context: grpc.aio.ServicerContext
    ) -> hv_pb2.GetStateInfoSizeResponse:
        # UNAUTHENTICATED before any argument check.
        caller = await self._caller(context, "GetStateInfoSize")
        await self._check_type(context, request.type)
        if not self._is_dom0(caller, "GetStateInfoSize", request.type):
            return hv_pb2.GetStateInfoSizeResponse(sal_status=SalStatus.NO_INFORMATION)
        return hv_pb2.GetStateInfoSizeResponse(
            sal_status=SalStatus.SUCCESS, size=self.coordinator.get_state_info_size(request.type)
        )

    async def ClearStateInfo(
        self, request: hv_pb2.ClearStateInfoRequest, context: grpc.aio.ServicerContext
    ) -> hv_pb2.ClearStateInfoResponse:
        # UNAUTHENTICATED before any argument check.
        hop_trace.mark("xen.clear.in")
        caller = await self._caller(context, "ClearStateInfo")
        await self._check_type(context, request.type)
        if not self._is_dom0(caller, "ClearStateInfo", request.type):
            return hv_pb2.ClearStateInfoResponse(sal_status=SalStatus.NO_INFORMATION)
        record_id = request.record_id if request.HasField("record_id") else None
        pcpu = request.pcpu if request.HasField("pcpu") else None
        with self.coordinator.trapped_call():
            cleared = await asyncio.shield(
                self.coordinator.clear_state_info(
                    request.type, record_id, pcpu, request.carry_interrupt_for
                )
            )
        hop_trace.mark("xen.clear.out")
        return cleared

    async def DescribeHypervisor(
        self, request: hv_pb2.DescribeHypervisorRequest, context: grpc.aio.ServicerContext
    ) -> hv_pb2.DescribeHypervisorResponse:
        await self._identity(context, "DescribeHypervisor")
        return describe(self.coordinator)

    async def SetVcpuPlacement(
        self, request: hv_pb2.SetVcpuPlacementRequest, context: grpc.aio.ServicerContext
    ) -> hv_pb2.SetVcpuPlacementResponse:
        await self._require(context, "SetVcpuPlacement", OPERATOR)
        try:
            previous = self.coordinator.set_vcpu_placement(request.pcpu)
        except KeyError:
            await errors.abort(
                context,
                errors.invalid_argument(
                    "UNKNOWN_PCPU", f"pCPU {request.pcpu} is not in the inventory", field="pcpu"
                ),
            )
        return hv_pb2.SetVcpuPlacementResponse(previous_pcpu=previous)


def create_server(
    address: str,
    coordinator: Coordinator,
    tokens: TokenBook | None = None,
    *,
    faults: FaultInjector | None = None,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[BuiltServer, int]:
    """The coordinator's server bound to address (port 0 for a free one), not yet started.

    With ``credentials`` (``xenmca.rpc.tls.server_credentials``) it serves mutual
    TLS only, and each caller's identity is its client certificate's CN.

    It applies per-RPC fault rules from ``faults`` (a new injector on the
    coordinator's clock when not given; ``built.faults``), serves FaultService
    (operator-only when callers are identified) and reports fired faults on coordinator.events.
    """
    servicer = HypervisorServicer(coordinator, tokens)
    built = build_server(
        address,
        [
            ServiceBinding(
                SERVICE_NAME, lambda s: hv_grpc.add_HypervisorServiceServicer_to_server(servicer, s)
            )
        ],
        faults=faults if faults is not None else FaultInjector(coordinator.clock),
        tokens=tokens,
        events=coordinator.events,
        credentials=credentials,
    )
    return built, built.port
