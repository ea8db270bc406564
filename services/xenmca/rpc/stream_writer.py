"""Writing a server stream that a reader who stopped reading cannot hold open.

``context.write`` waits while the peer's HTTP/2 window is full, that is while the
peer does not read; a handler that only noticed its subscriber lagging between
writes would stay blocked there, keeping the call, its stream slot
(xenmca.rpc.stream_limit) and whatever it holds for the subscriber.
``write_stream`` writes from a task of its own and, as soon as ``cut_off`` is
set, aborts the call with the handler's reason and returns.

gRPC sends that status after the messages it has already buffered, so the abort
itself may wait for the reader: it runs in a task of its own, and the handler
returns once it has started (gRPC then ends the handler's part of the call as
aborted). A reader that comes back reads what was buffered, then the status.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable
from typing import Any

import grpc

from xenmca.rpc import errors

_aborting: set[asyncio.Task[None]] = set()
"""Aborts whose status still waits for its reader (kept referenced until done)."""


async def write_stream(
    context: grpc.aio.ServicerContext,
    replies: AsyncIterable[Any],
    cut_off: asyncio.Event,
    refusal: Callable[[], errors.RequestError],
) -> None:
    """Write every reply until they end, or abort with refusal() as soon as cut_off is set.

    The handler must have sent its initial metadata (``context.send_initial_metadata``):
    otherwise a write abandoned before its completion leaves gRPC thinking they are
    unsent, and the abort's second attempt to send them fails, leaving the call with
    no status. An exception raised by replies (or by a write) is raised here.
    """

    async def send() -> None:
        async for reply in replies:
            await context.write(reply)

    sender = asyncio.create_task(send())
    stop = asyncio.create_task(cut_off.wait())
    try:
        await asyncio.wait((sender, stop), return_when=asyncio.FIRST_COMPLETED)
        if cut_off.is_set():
            await _start_abort(context, refusal())
            return
    finally:
        stop.cancel()
        sender.cancel()  # a write still waiting for the reader is abandoned
        await asyncio.gather(sender, stop, return_exceptions=True)
    sender.result()


async def _start_abort(context: grpc.aio.ServicerContext, error: errors.RequestError) -> None:
    """Abort the call in a task of its own; return once the call counts as aborted."""
    started = asyncio.Event()

    async def abort() -> None:
        started.set()
        # Marks the call aborted before its first await, so before the handler resumes.
        await errors.abort(context, error)

    task = asyncio.create_task(abort())
    _aborting.add(task)
    task.add_done_callback(_aborted)
    await started.wait()


def _aborted(task: asyncio.Task[None]) -> None:
    _aborting.discard(task)
    if not task.cancelled():
        task.exception()  # the abort's own exception, or the reader left first: nothing to report
