"""At most N open calls of each streaming method per server; one more is refused.

Every server that ``build_server`` makes has one StreamLimit (applied to its
handlers once, by xenmca.rpc.dispatch). A call
of a method with a request or a response stream (WatchInterrupts, AttachDom0,
health Watch, reflection's ServerReflectionInfo, ...) counts as open while its
handler runs. A call beyond the limit is refused before its handler runs, with
RESOURCE_EXHAUSTED and one ErrorInfo (TOO_MANY_STREAMS): it subscribes to
nothing and changes nothing. Unary calls are not counted (they are short).

Why not gRPC's own limits: gRPC's ``grpc.max_concurrent_streams`` is an HTTP/2 setting
per connection (a client with many channels is not bound by it, and it also
caps unary calls), and ``grpc.aio.server(maximum_concurrent_rpcs=...)`` counts
unary calls too and refuses without a google.rpc.Status.

Why per method: health Watch and reflection answer any caller (they check no
identity), so one shared budget would let an anonymous client hold every slot
and lock the coordinator out of WatchInterrupts, or dom0 out of AttachDom0. A
server's total is still bounded: the limit times its streaming methods (three
on a pCPU or on the coordinator).
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc

from xenmca.rpc import errors

DEFAULT_MAX_STREAMS = 4
"""Open calls of one streaming method a server admits. A pCPU has one legitimate
watcher (the coordinator) and the coordinator one attached dom0 (two while one
replaces the other); every admitted watcher of a pCPU costs the host one more
copy of every interrupt it sends."""
TOO_MANY_STREAMS = "TOO_MANY_STREAMS"


class StreamLimit:
    """Counts the open calls of each streaming method of one server and refuses the excess."""

    def __init__(self, max_streams: int = DEFAULT_MAX_STREAMS) -> None:
        if max_streams < 1:
            raise ValueError(f"max_streams must be at least 1, got {max_streams}")
        self.max_streams = max_streams
        self._open: Counter[str] = Counter()
        self.refused = 0
        """Streams refused since the server started."""

    def open_streams(self, method: str | None = None) -> int:
        """Open streaming calls of method (its full path), or of every method."""
        return self._open[method] if method is not None else self._open.total()

    def limit(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """handler of method (its full path), counted while it runs when it streams."""
        if not (handler.request_streaming or handler.response_streaming):
            return handler
        return self._limited(handler, method)

    async def _enter(self, method: str, context: grpc.aio.ServicerContext) -> None:
        if self._open[method] >= self.max_streams:
            self.refused += 1
            await errors.abort(
                context,
                errors.RequestError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    TOO_MANY_STREAMS,
                    f"{method}: this server already has {self._open[method]} open calls of "
                    f"this method (at most {self.max_streams}); retry later",
                    {"method": method, "max_streams": str(self.max_streams)},
                ),
            )
        self._open[method] += 1

    def _leave(self, method: str) -> None:
        self._open[method] -= 1
        if self._open[method] <= 0:
            del self._open[method]

    def _limited(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """handler, counted while it runs (async handlers only, as every xenmca server has)."""
        if handler.request_streaming and handler.response_streaming:
            behaviour, make = handler.stream_stream, grpc.stream_stream_rpc_method_handler
        elif handler.request_streaming:
            behaviour, make = handler.stream_unary, grpc.stream_unary_rpc_method_handler
        else:
            behaviour, make = handler.unary_stream, grpc.unary_stream_rpc_method_handler
        counted: Any
        if inspect.isasyncgenfunction(behaviour):

            async def counted_stream(
                request: Any, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                await self._enter(method, context)
                try:
                    async with aclosing(behaviour(request, context)) as replies:
                        async for reply in replies:
                            yield reply
                finally:
                    self._leave(method)

            counted = counted_stream
        else:

            async def counted_call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await self._enter(method, context)
                try:
                    return await behaviour(request, context)
                finally:
                    self._leave(method)

            counted = counted_call
        return make(  # type: ignore[operator]
            counted,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
