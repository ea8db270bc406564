"""Requests that do not parse get INVALID_ARGUMENT with an ErrorInfo, not gRPC's bare UNKNOWN.

gRPC decodes a request before any servicer code runs and answers a decoding
failure itself, with no google.rpc.Status. ``refuse_undecodable`` gives a
method handler a decoder that never raises and refuses the marked request the
way every other bad request is refused; every server that ``build_server``
makes applies it to each of its handlers once (xenmca.rpc.dispatch).

A method with a request stream (reflection's ServerReflectionInfo, for one)
decodes each message while its handler reads the stream, so a bad message would
end the handler with an exception: UNKNOWN and a traceback in the log. Its
decoder raises UndecodableRequest instead, which the wrapped handler turns into
the same refusal (after any replies it already sent). A handler that catches
every exception while reading its requests would hide it; no xenmca or library
handler does.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import grpc

from xenmca.rpc import errors


class _Malformed:
    """Stands for a unary request whose bytes did not decode."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class UndecodableRequest(Exception):
    """A message of a request stream did not decode (raised by the stream's decoder)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the request bytes do not decode ({reason})")
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


def _raising(decode: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if decode is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as exc:
            raise UndecodableRequest(type(exc).__name__) from None

    return parse


def _refusal(reason: str) -> errors.RequestError:
    return errors.invalid_argument(
        "MALFORMED_REQUEST", f"the request bytes do not decode ({reason})"
    )


def _unary_request(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """handler with a lenient decoder, refusing the requests that did not decode."""
    parse = _lenient(handler.request_deserializer)
    if handler.response_streaming:
        inner_stream = handler.unary_stream

        if inspect.isasyncgenfunction(inner_stream):

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                if isinstance(request, _Malformed):
                    await errors.abort(context, _refusal(request.reason))
                async for reply in inner_stream(request, context):
                    yield reply

            behaviour: Any = stream
        else:

            async def writer(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if isinstance(request, _Malformed):
                    await errors.abort(context, _refusal(request.reason))
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
            await errors.abort(context, _refusal(request.reason))
        return await inner(request, context)

    return grpc.unary_unary_rpc_method_handler(
        unary, request_deserializer=parse, response_serializer=handler.response_serializer
    )


def _request_stream(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """handler with a decoder that raises UndecodableRequest, refused as MALFORMED_REQUEST."""
    parse = _raising(handler.request_deserializer)
    if handler.response_streaming:
        inner, make = handler.stream_stream, grpc.stream_stream_rpc_method_handler
    else:
        inner, make = handler.stream_unary, grpc.stream_unary_rpc_method_handler
    behaviour: Any
    if inspect.isasyncgenfunction(inner):

        async def stream(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async with aclosing(inner(requests, context)) as replies:
                    async for reply in replies:
                        yield reply
            except UndecodableRequest as exc:
                await errors.abort(context, _refusal(exc.reason))

        behaviour = stream
    else:

        async def call(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await inner(requests, context)
            except UndecodableRequest as exc:
                await errors.abort(context, _refusal(exc.reason))

        behaviour = call
    return make(  # type: ignore[operator]
        behaviour, request_deserializer=parse, response_serializer=handler.response_serializer
    )


def refuse_undecodable(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """handler, refusing undecodable requests with INVALID_ARGUMENT / MALFORMED_REQUEST."""
    return _request_stream(handler) if handler.request_streaming else _unary_request(handler)
