"""Running servers until SIGTERM/SIGINT, with one log line per start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("xenmca")

DIE_WITH_PARENT_ENV = "XENMCA_DIE_WITH_PARENT"
PR_SET_PDEATHSIG = 1


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


def run_until_signal(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """asyncio.run(main()) and turn a KeyboardInterrupt into exit status 130."""
    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 130
