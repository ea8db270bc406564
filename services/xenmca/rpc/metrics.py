"""Prometheus metrics plumbing shared by every server: flags, endpoint, reads on the loop.

Each process keeps its metrics in its own ``CollectorRegistry`` (never the
global one) and serves it with ``prometheus_client.start_http_server`` on a
daemon thread. Collectors read the component's state at scrape time; the
state belongs to the asyncio event loop, so ``LoopReader`` takes the snapshot
on that loop (a consistent, race-free read of plain numbers) and the scrape
thread formats it.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from xenmca.rpc.lifecycle import StartError

if TYPE_CHECKING:  # prometheus_client is imported when an endpoint starts: `--help` stays quick
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry

T = TypeVar("T")

DEFAULT_METRICS_HOST = "127.0.0.1"
SNAPSHOT_TIMEOUT = 5.0
"""Longest a scrape waits for the event loop to take its snapshot (seconds)."""

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Histogram buckets for call and commit latencies: 0.1 ms to 5 s (seconds)."""


def _metrics_port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"metrics port must be 0..65535, got {text!r}")
    return int(text)


def add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    """--metrics-port (absent: no endpoint; 0: any free port) and --metrics-host."""
    group = parser.add_argument_group("Prometheus metrics")
    group.add_argument(
        "--metrics-port",
        type=_metrics_port,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics over HTTP on PORT (0: any free port, logged); "
        "default: no metrics endpoint",
    )
    group.add_argument(
        "--metrics-host",
        default=DEFAULT_METRICS_HOST,
        metavar="HOST",
        help=f"address the metrics endpoint listens on (default {DEFAULT_METRICS_HOST})",
    )


class MetricsStartError(StartError):
    """The metrics endpoint could not listen; the message names the address."""


class LoopReader:
    """Runs a read of loop-owned state on that loop, from any thread, and returns its result.

    On the loop's own thread, or when the loop is not running (nothing changes
    the state then), the read runs directly.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.get_running_loop()

    def __call__(self, read: Callable[[], T], timeout: float = SNAPSHOT_TIMEOUT) -> T:
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is self.loop or not self.loop.is_running():
            return read()
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not result.set_running_or_notify_cancel():
                return
            try:
                result.set_result(read())
            except BaseException as exc:  # handed to the scrape thread
                result.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        try:
            return result.result(timeout)
        finally:
            result.cancel()


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class MetricsEndpoint:
    """A running HTTP endpoint serving one registry at /metrics (any path answers)."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        from prometheus_client import start_http_server

        try:
            server, thread = start_http_server(port, host, registry=registry)
        except (OSError, ValueError) as exc:
            raise MetricsStartError(f"cannot serve metrics on {_join(host, port)}: {exc}") from exc
        self._server: WSGIServer | None = server
        self._thread = thread
        self.host = host
        self.port: int = server.server_port

    @property
    def address(self) -> str:
        return _join(self.host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def close(self) -> None:
        """Stop listening (idempotent); blocks up to half a second."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        self._thread.join(timeout=1.0)

    async def aclose(self) -> None:
        """close() off the event loop."""
        await asyncio.to_thread(self.close)


def start_metrics_endpoint(
    registry: CollectorRegistry, host: str, port: int, log: logging.Logger
) -> MetricsEndpoint:
    """Serve registry on host:port (0: any free port) and log the bound address in one line."""
    endpoint = MetricsEndpoint(registry, host, port)
    log.info("serving Prometheus metrics on %s", endpoint.url)
    return endpoint
