"""The coordinator's link to one pCPU: a channel, its SalService stub, the interrupt stream.

The stream is kept open for the coordinator's life: when it breaks (the host
died, the link was cut) it is reopened with exponential backoff and full jitter,
and every (re)connection is followed by a reconciliation (DescribePcpu) so
that records created while the stream was down are queued too.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import grpc

from xenmca.rpc import hop_trace
from xenmca.rpc.channels import open_channel
from xenmca.rpc.clock import Clock
from xenmca.rpc.fault_wrap import SAL_PATH_METADATA
from xenmca.rpc.identity import call_metadata
from xenmca.rpc.retry import Backoff, BackoffPolicy
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

log = logging.getLogger(__name__)

InterruptHandler = Callable[[int, int, int], None]

PCPU_LINK_KEEPALIVE_MS = 30_000
"""Keepalive ping interval of a pCPU link. A killed host resets its connections, and a
call to an unreachable pCPU fails on its own deadline; the ping only finds a host that
vanished silently, so it can be rare: at 10 s, 4 096 links cost the idle coordinator
about 2-3 % of a core in pings (410/s), at 30 s under 1 %."""
ConnectHandler = Callable[[int], Awaitable[None]]

LINK_BACKOFF = BackoffPolicy(initial=0.05, maximum=2.0, multiplier=2.0, jitter="full")
"""Reconnecting a pCPU's stream, and holding its entries after a failed call."""


class PcpuLink:
    """One pCPU's SalService as the coordinator sees it."""

    def __init__(
        self,
        pcpu: int,
        address: str,
        *,
        token: str | None,
        clock: Clock,
        credentials: grpc.ChannelCredentials | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.pcpu = pcpu
        self.address = address
        self.metadata = call_metadata(token)
        # SAL calls say whether they are made locally or by IPI (xenmca.rpc.faults).
        self._sal_metadata = {
            by_ipi: (*self.metadata, (SAL_PATH_METADATA, "ipi" if by_ipi else "local"))
            for by_ipi in (False, True)
        }
        self.channel = open_channel(address, credentials, keepalive_ms=PCPU_LINK_KEEPALIVE_MS)
        self.stub = sal_grpc.SalServiceStub(self.channel)
        self.connected = False
        self.connects = 0
        # A call to this pCPU failed after all retries: hold its entries until then.
        self.hold_until = 0.0
        # One generator for both backoffs: a Random is 2.5 KiB, and there is a link per pCPU.
        jitter = rng or random.Random(pcpu)
        self.call_backoff = Backoff(LINK_BACKOFF, jitter)
        self._stream_backoff = Backoff(LINK_BACKOFF, jitter)
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def sal_metadata(self, by_ipi: bool) -> tuple[tuple[str, str], ...]:
        """Call metadata of a SAL call on this pCPU, made by IPI or locally."""
        return self._sal_metadata[by_ipi]

    def available(self) -> bool:
        return self._clock.now() >= self.hold_until

    def hold(self) -> float:
        """Hold this pCPU's entries for a backoff delay after a failed call; return the delay."""
        delay = self.call_backoff.next_delay()
        self.hold_until = self._clock.now() + delay
        return delay

    def release(self) -> None:
        self.call_backoff.reset()
        self.hold_until = 0.0

    def start(self, on_interrupt: InterruptHandler, on_connect: ConnectHandler) -> None:
        self._task = asyncio.create_task(
            self._watch(on_interrupt, on_connect), name=f"watch-pcpu-{self.pcpu}"
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.channel.close()

    async def _watch(self, on_interrupt: InterruptHandler, on_connect: ConnectHandler) -> None:
        while True:
            call = self.stub.WatchInterrupts(
                sal_pb2.WatchInterruptsRequest(), metadata=self.metadata
            )
            try:
                # The pCPU sends initial metadata once this subscriber is registered,
                # so the reconciliation below cannot miss a record raised meanwhile.
                await call.initial_metadata()
                if call.done():  # failed before the pCPU answered (initial metadata is empty)
                    log.debug("pCPU %d interrupt stream: %s", self.pcpu, await call.code())
                else:
                    self.connected = True
                    self.connects += 1
                    self._stream_backoff.reset()
                    self.release()
                    await on_connect(self.pcpu)
                    async for interrupt in call:
                        hop_trace.mark("xen.irq.in")
                        on_interrupt(self.pcpu, interrupt.type, interrupt.record_id)
                    log.info("pCPU %d interrupt stream ended (%s)", self.pcpu, await call.code())
            except grpc.aio.AioRpcError as exc:
                log.debug("pCPU %d interrupt stream failed: %s", self.pcpu, exc.code())
            except Exception:  # never let one pCPU's link die; reconnect instead
                log.exception("pCPU %d interrupt stream handler failed", self.pcpu)
            finally:
                self.connected = False
                call.cancel()
            await self._clock.sleep(self._stream_backoff.next_delay())
