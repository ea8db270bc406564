"""Requests that do not parse get INVALID_ARGUMENT with an ErrorInfo, not gRPC's bare UNKNOWN.

gRPC decodes a request before any servicer code runs and answers a decoding
failure itself, with no google.rpc.Status. This interceptor swaps in a
decoder that never raises and refuses the marked request the way every other
bad request is refused.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from xenmca.rpc import errors


class _Malformed:
    """Stands for a request whose bytes did not decode."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _lenient(decode: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if decode is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as exc:
            return _Malformed(type(exc).__name__)

    return parse


def _refusal(request: _Malformed) -> errors.RequestError:
    return errors.invalid_argument(
        "MALFORMED_REQUEST", f"the request bytes do not decode ({request.reason})"
    )


def _refusing(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """handler with a lenient decoder, refusing the requests that did not decode."""
    parse = _lenient(handler.request_deserializer)
    if handler.response_streaming:
        inner_stream = handler.unary_stream

        if inspect.isasyncgenfunction(inner_stream):

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                if isinstance(request, _Malformed):
                    await errors.abort(context, _refusal(request))
                async for reply in inner_stream(request, context):
                    yield reply

            behaviour: Any = stream
        else:

            async def writer(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if isinstance(request, _Malformed):
                    await errors.abort(context, _refusal(request))
                return await inner_stream(request, context)

            behaviour = writer
        return grpc.unary_stream_rpc_method_handler(
            behaviour,
            request_deserializer=parse,
            response_serializer=handler.response_serializer,
        )
    inner = handler.unary_unary

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Malformed):
            await errors.abort(context, _refusal(request))
        return await inner(request, context)

    return grpc.unary_unary_rpc_method_handler(
        unary, request_deserializer=parse, response_serializer=handler.response_serializer
    )


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):
    """Refuses undecodable unary requests with INVALID_ARGUMENT / MALFORMED_REQUEST.

    A server's handlers do not change once it serves, so each is wrapped once, on
    its first call, not on every call.
    """

    def __init__(self) -> None:
        self._wrapped: dict[grpc.RpcMethodHandler, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming:
            return handler
        wrapped = self._wrapped.get(handler)
        if wrapped is None:
            wrapped = self._wrapped[handler] = _refusing(handler)
        return wrapped
