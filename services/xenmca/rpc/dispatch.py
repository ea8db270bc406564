"""One generic handler per server: finds each call's method handler and applies the
server-wide wrappers (undecodable requests, stream limits, fault rules) without
gRPC server interceptors.

grpc.aio runs a server's interceptors as a chain of coroutines on every call,
even when each one hands the handler back unchanged. Here a method's wrapped
handler is built on its first call and kept: per call, the work is one dict
lookup and, only while the process has fault rules, the fault match
(xenmca.rpc.fault_wrap). The order is the one the interceptors had: fault rules
outermost, then the stream limit, then the refusal of undecodable requests.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from xenmca.rpc.fault_wrap import FaultWrapper
from xenmca.rpc.malformed import refuse_undecodable
from xenmca.rpc.stream_limit import StreamLimit


class ServerHandlers(grpc.GenericRpcHandler):
    """Every handler of one server, wrapped once per method."""

    def __init__(
        self,
        handlers: Sequence[grpc.GenericRpcHandler],
        streams: StreamLimit,
        faults: FaultWrapper | None = None,
    ) -> None:
        self._handlers = tuple(handlers)
        self.streams = streams
        self.faults = faults
        self._methods: dict[str, grpc.RpcMethodHandler] = {}

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if isinstance(method, bytes):
            method = method.decode()
        handler = self._methods.get(method)
        if handler is None:
            handler = self._find(handler_call_details, method)
        faults = self.faults
        if faults is not None and faults.injector.has_rules:
            return faults.apply(handler, handler_call_details)
        return handler

    def _find(
        self, handler_call_details: grpc.HandlerCallDetails, method: str
    ) -> grpc.RpcMethodHandler | None:
        for generic in self._handlers:
            found = generic.service(handler_call_details)
            if found is not None:
                wrapped = self.streams.limit(refuse_undecodable(found), method)
                self._methods[method] = wrapped
                return wrapped
        # An unknown method is not kept: any caller can make up names.
        return None
