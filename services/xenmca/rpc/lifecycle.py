"""A component's lifecycle: open its resources, report it ready, serve until SIGTERM/SIGINT, close.

``run_component`` is the one lifecycle of ``xenmca serve pcpu``, ``xenmca serve
xen`` and ``xenmca dom0``: the role's setup enters every resource it opens
into an ``AsyncExitStack``, so whatever was opened is closed, in reverse order,
whether a later start step fails or the component is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from xenmca.rpc import event_loop

log = logging.getLogger("xenmca")

DIE_WITH_PARENT_ENV = "XENMCA_DIE_WITH_PARENT"
PR_SET_PDEATHSIG = 1
START_FAILED = 3
"""Exit status of a component that could not start (the README's exit statuses)."""

Report = Mapping[str, Any] | None
"""What a started component reports in its ready file (JSON); None: no ready file."""
Setup = Callable[[contextlib.AsyncExitStack], Awaitable[Report]]


class StartError(RuntimeError):
    """Something a component serves could not start (an address in use); the message is one line."""


def die_with_parent_if_asked() -> None:
    """When a launcher asked for it, get SIGKILL when the launcher dies (Linux prctl).

    The launcher passes its pid; if it is already gone (we were re-parented
    before the prctl took effect), exit at once rather than run orphaned.
    """
    parent = os.environ.pop(DIE_WITH_PARENT_ENV, None)
    if not parent or not parent.isdigit():
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(parent):
        os._exit(1)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


async def wait_for_stop_signal() -> None:
    """Return when the process receives SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run_until_signal(
    main: Callable[[], Coroutine[Any, Any, int]], *, spawns_processes: bool = False
) -> int:
    """Run main() on the chosen event loop (xenmca.rpc.event_loop; asyncio's own for a
    process that starts children, ``spawns_processes``); a KeyboardInterrupt gives exit
    status 130."""
    try:
        return event_loop.run(main, spawns_processes=spawns_processes)
    except KeyboardInterrupt:
        return 130


def write_ready_file(path: Path, report: Report) -> None:
    """Write report as JSON to path atomically: a reader sees no file or the whole file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(report) + "\n")
    os.replace(temporary, path)


async def run_component(
    prog: str,
    setup: Setup,
    *,
    ready_file: Path | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Start a component with setup, write ready_file once it is up, serve until stopped.

    setup enters each resource into the stack as soon as it is open and returns
    what ready_file reports. The component serves until SIGTERM or SIGINT (or,
    in tests, until stop is set); then, or when setup raises, everything
    entered is closed in reverse order. A StartError is reported as one line on
    stderr and gives START_FAILED; any other exception (a UsageError too)
    propagates once everything is closed. The ready file is removed first on stop.
    """
    if ready_file is not None:
        # A killed run's file would say "ready" too early. noqa: one local unlink, before serving.
        ready_file.unlink(missing_ok=True)  # noqa: ASYNC240
    async with contextlib.AsyncExitStack() as stack:
        try:
            report = await setup(stack)
        except StartError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return START_FAILED
        if ready_file is not None:
            write_ready_file(ready_file, report)
            stack.callback(ready_file.unlink, missing_ok=True)
        if stop is None:
            await wait_for_stop_signal()
        else:
            await stop.wait()
    return 0


def standalone_main(
    prog: str,
    description: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    argv: list[str] | None = None,
) -> int:
    """A command run without the top-level `xenmca` parser (python -m xenmca.<role>.command):
    its own parser, logging, and a UsageError as one line and exit 2, as `xenmca` does."""
    from xenmca.rpc.usage import UsageError

    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        return run(args)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
