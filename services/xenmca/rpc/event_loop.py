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


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What asyncio.Runner should make its loop with (None: asyncio's default)."""
    if chosen() == "asyncio":
        return None
    import uvloop

    return uvloop.new_event_loop


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run(main()) on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main())
