"""How a process's fault rules (see xenmca.rpc.faults) act on a call's method handler,
and how a SAL call says it is local.

Every server that ``build_server`` makes asks its FaultWrapper about each call
(xenmca.rpc.dispatch), only while the process has rules.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import grpc

from xenmca.rpc import errors
from xenmca.rpc.clock import Clock
from xenmca.rpc.events import EventLog
from xenmca.rpc.fault_rules import FaultAction
from xenmca.rpc.faults import FaultInjector, Firing, injected_error

log = logging.getLogger(__name__)


SAL_PATH_METADATA = "x-xenmca-sal-path"
"""Call metadata naming how the coordinator reached a pCPU's SAL: "ipi" or "local".

Per-RPC fault rules stand for lost, late or failed IPIs: they never fire on a
SalService call marked "local" (the SAL call of the pCPU dom0's vCPU0 runs on),
as a local SAL procedure has no IPI to lose."""
_SAL_SERVICE_PREFIX = "/xenmca.sal.v1.SalService/"


def is_local_sal_call(details: grpc.HandlerCallDetails) -> bool:
    method = details.method
    if isinstance(method, bytes):
        method = method.decode()
    if not method.startswith(_SAL_SERVICE_PREFIX):
        return False
    return any(
        key == SAL_PATH_METADATA and value == "local"
        for key, value in (details.invocation_metadata or ())
    )


class FaultWrapper:
    """Applies an injector's rules to the calls of one server (serving pcpu, or none)."""

    def __init__(
        self, injector: FaultInjector, pcpu: int | None = None, events: EventLog | None = None
    ) -> None:
        self.injector = injector
        self.pcpu = pcpu
        self.events = events

    def apply(
        self, handler: grpc.RpcMethodHandler | None, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        """handler (the call's, None when the method is unknown), as the rule that fires
        on this call makes it behave; handler itself when none fires."""
        if not self.injector.has_rules:  # the fast path: no rules, no cost
            return handler
        if is_local_sal_call(handler_call_details):
            return handler
        method = handler_call_details.method
        if isinstance(method, bytes):
            method = method.decode()
        firing = self.injector.match(method, self.pcpu)
        if firing is None or handler is None:
            return handler
        if self.events is not None:
            self.events.emit(
                "fault_fired",
                fault_id=firing.fault_id,
                method=firing.method,
                pcpu=self.pcpu,
                action=firing.action.label,
            )
        log.debug("fault %s fires: %s", firing.fault_id, firing.action.label)
        return self._wrap(handler, firing)

    # -- wrapping handlers ------------------------------------------------------

    def _wrap(self, handler: grpc.RpcMethodHandler, firing: Firing) -> grpc.RpcMethodHandler:
        error = injected_error(firing, self.pcpu)
        clock = self.injector.clock
        serializers: dict[str, Any] = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary_reply(handler.unary_unary, firing, error, clock), **serializers
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _unary_reply(handler.stream_unary, firing, error, clock), **serializers
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _stream_reply(handler.unary_stream, firing, error, clock), **serializers
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _stream_reply(handler.stream_stream, firing, error, clock), **serializers
            )
        return handler  # pragma: no cover - a handler always has one behaviour


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _unary_reply(
    behaviour: Callable[..., Any], firing: Firing, error: errors.RequestError, clock: Clock
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def faulty(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if firing.action is FaultAction.FAIL:
            await errors.abort(context, error)
        if firing.action is FaultAction.DELAY:
            await clock.sleep(firing.delay)
            return await _maybe_await(behaviour(request, context))
        await _maybe_await(behaviour(request, context))  # the server acts...
        await errors.abort(context, error)  # ...and its reply is lost

    return faulty


def _stream_reply(
    behaviour: Callable[..., Any], firing: Firing, error: errors.RequestError, clock: Clock
) -> Callable[[Any, grpc.aio.ServicerContext], Any]:
    if not inspect.isasyncgenfunction(behaviour):
        return _written_stream_reply(behaviour, firing, error, clock)

    async def faulty(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if firing.action is FaultAction.FAIL:
            await errors.abort(context, error)
        if firing.action is FaultAction.DELAY:
            await clock.sleep(firing.delay)
        async with aclosing(behaviour(request, context)) as replies:
            async for reply in replies:
                if firing.action is FaultAction.DROP_REPLY:
                    break  # the first message is produced (the server acted) and lost
                yield reply
        if firing.action is FaultAction.DROP_REPLY:
            await errors.abort(context, error)

    return faulty


class _LoseFirstWrite:
    """A servicer context whose first write() is lost and ends the call with the error."""

    def __init__(self, context: grpc.aio.ServicerContext, error: errors.RequestError) -> None:
        self._context = context
        self._error = error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def write(self, message: Any) -> None:
        await errors.abort(self._context, self._error)


def _written_stream_reply(
    behaviour: Callable[..., Any], firing: Firing, error: errors.RequestError, clock: Clock
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[None]]:
    """For stream handlers that write with context.write() rather than yield."""

    async def faulty(request: Any, context: grpc.aio.ServicerContext) -> None:
        if firing.action is FaultAction.FAIL:
            await errors.abort(context, error)
        if firing.action is FaultAction.DELAY:
            await clock.sleep(firing.delay)
            await _maybe_await(behaviour(request, context))
            return
        await _maybe_await(behaviour(request, _LoseFirstWrite(context, error)))
        await errors.abort(context, error)  # ended without a message: the end is lost

    return faulty
