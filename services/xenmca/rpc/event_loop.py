"""The asyncio event loop a component process runs on: uvloop unless asked otherwise.

Every xenmca component is an asyncio program whose per-record work is mostly the
event loop's own (grpc.aio completes each call through a few loop iterations,
tasks and futures), so the loop's speed is a large share of a record's cost.
uvloop (libuv, in Cython) runs the same program faster: the faithful flow of
`xenmca bench` gained about 20 % in records/s (interleaved runs, 3 000 records,
64 pCPUs; issue 18), the bare skeleton of the same hops about 9 %.

``XENMCA_EVENT_LOOP=asyncio`` runs on asyncio's own loop instead (for a platform
without uvloop, or to compare); the variable is inherited by every process that
`xenmca up`, `run`, `demo`, `bench` and the agents start. In-process tests run
on the test's own loop and are not affected.

A process that starts child processes while its gRPC threads run (an agent, `xenmca
up`) stays on asyncio's loop whatever the variable says (``spawns_processes``):
uvloop starts a child with libuv's fork(), which runs gRPC's fork handlers in the
child before its exec, and those abort it ("Check failed: next_worker->state ==
KICKED" in ev_epoll1_linux.cc) when other threads are inside gRPC at that moment,
as an agent's are when it restarts a killed component. asyncio's loop starts
children through _posixsubprocess, which uses vfork() and so runs no fork handlers.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from xenmca.rpc.usage import UsageError

EVENT_LOOP_ENV = "XENMCA_EVENT_LOOP"
CHOICES = ("uvloop", "asyncio")
DEFAULT = "uvloop"

T = TypeVar("T")


def chosen() -> str:
    """The loop named by XENMCA_EVENT_LOOP (uvloop when unset); UsageError if unknown."""
    choice = os.environ.get(EVENT_LOOP_ENV, "").strip() or DEFAULT
    if choice not in CHOICES:
        raise UsageError(f"{EVENT_LOOP_ENV}={choice!r}: choose {' or '.join(CHOICES)}")
    return choice


def loop_factory(spawns_processes: bool = False) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What asyncio.Runner should make its loop with (None: asyncio's default)."""
    if chosen() == "asyncio" or spawns_processes:
        return None
    import uvloop

    return uvloop.new_event_loop


def run(main: Callable[[], Coroutine[Any, Any, T]], *, spawns_processes: bool = False) -> T:
    """asyncio.run(main()) on the chosen loop (asyncio's own when ``spawns_processes``)."""
    with asyncio.Runner(loop_factory=loop_factory(spawns_processes)) as runner:
        return runner.run(main())
