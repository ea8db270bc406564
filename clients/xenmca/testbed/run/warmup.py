"""Warm-up before the workload clock starts: what a first run on a fresh machine pays once.

* matplotlib builds its font cache the first time it is imported (seconds of CPU
  on a machine with many fonts); `warm_plots` imports the plots module and renders
  a tiny figure on a thread while the testbed starts, so neither the workload nor
  the report pays for it.
* The workload's channel to each pCPU it drives is opened, and answers one health
  check, before the clock starts: `WarmChannels` hands those channels to the
  workload as its channel factory.
* Every process answers at least one call before the clock starts: the
  calibration's round trips reach the coordinator and every pCPU host, and dom0
  (which serves no gRPC) is scraped once on its metrics endpoint.

No record is injected: a warm-up must not change the scenario's record counts.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Iterable, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

WARM_CONCURRENCY = 32
CALL_TIMEOUT_S = 10.0


def warm_plots() -> tuple[float, str | None]:
    """Import the plotting stack and draw one small figure: (seconds it took, error or None).

    Never raises: a plotting problem shows where the plots are drawn, after the run.
    """
    began = time.perf_counter()
    try:
        from matplotlib.figure import Figure

        from xenmca.testbed.report import plots  # noqa: F401  (sets the Agg backend; builds the font cache)

        figure = Figure(figsize=(1, 1), dpi=50)
        axes = figure.add_subplot()
        axes.plot([0, 1], [0, 1])
        axes.set_title("warm-up")
        figure.savefig(io.BytesIO(), format="png")
    except Exception as exc:  # any failure of a third-party stack, reported as a string
        return time.perf_counter() - began, f"{type(exc).__name__}: {exc}"
    return time.perf_counter() - began, None


class WarmChannels:
    """Channels opened (and answered once) before the workload; each is handed out once.

    `channel(address)` is the workload's channel factory: it gives the warmed
    channel to that address, whose owner it becomes (the workload closes it), or a
    new one when none was warmed. `close()` closes the ones never handed out.
    """

    def __init__(self, factory: Callable[[str], grpc.aio.Channel]) -> None:
        self._factory = factory
        self._ready: dict[str, grpc.aio.Channel] = {}

    async def warm(
        self, addresses: Iterable[str], metadata: Sequence[tuple[str, str]] = ()
    ) -> list[str]:
        """Open a channel to each address and make one health check; returns the failures."""
        limit = asyncio.Semaphore(WARM_CONCURRENCY)
        errors: list[str] = []

        async def one(address: str) -> None:
            channel = self._factory(address)
            self._ready[address] = channel
            async with limit:
                try:
                    await health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S, metadata=metadata
                    )
                except grpc.aio.AioRpcError as exc:
                    errors.append(f"{address}: {exc.code().name}")

        await asyncio.gather(*(one(a) for a in dict.fromkeys(addresses)))
        return sorted(errors)

    def channel(self, address: str) -> grpc.aio.Channel:
        warmed = self._ready.pop(address, None)
        return warmed if warmed is not None else self._factory(address)

    async def close(self) -> None:
        ready, self._ready = self._ready, {}
        await asyncio.gather(*(ch.close() for ch in ready.values()), return_exceptions=True)
