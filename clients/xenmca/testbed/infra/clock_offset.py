"""A host's clock offset from the runner's, estimated NTP-style over a few round trips.

Each sample is one round trip to the host: the runner reads its own clock when
it sends (t0) and when the reply is in (t3); the host stamps when the request
arrived (t1) and when it answered (t2). Then, as NTP computes it (RFC 5905,
section 8):

    offset = ((t1 - t0) + (t2 - t3)) / 2      the host's clock minus the runner's
    delay  = (t3 - t0) - (t2 - t1)            the round trip, without the host's own time

Whatever the route, the true offset lies within offset +- delay / 2, so the
samples with the shortest delay are the ones to keep: the estimate is the
offset of the fastest round trip, and its uncertainty is half that delay. The
clocks are CLOCK_MONOTONIC (stamps of events) or CLOCK_REALTIME; a host in a
Linux time namespace can have a monotonic clock minutes away from the runner's.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

from xenmca.agent.v1 import agent_service_pb2 as agent_pb2
from xenmca.agent.v1 import agent_service_pb2_grpc as agent_grpc

RemoteStamps = tuple[int, int]
"""(t1, t2): when the host received the request and when it sent the reply, in ns."""

DEFAULT_SAMPLES = 8


@dataclass(frozen=True)
class Sample:
    """One round trip: the runner's send and receive times and the host's two stamps (ns)."""

    t0: int
    t1: int
    t2: int
    t3: int

    @property
    def offset_ns(self) -> float:
        return ((self.t1 - self.t0) + (self.t2 - self.t3)) / 2

    @property
    def delay_ns(self) -> int:
        return (self.t3 - self.t0) - (self.t2 - self.t1)


@dataclass(frozen=True)
class ClockOffset:
    """A host's clock minus the runner's, and how far the truth can be from it."""

    offset_ns: float
    uncertainty_ns: float
    samples: int

    def to_runner_ns(self, host_ns: int) -> int:
        """A host timestamp on the runner's clock."""
        return round(host_ns - self.offset_ns)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "offset_ms": round(self.offset_ns / 1e6, 3),
            "uncertainty_ms": round(self.uncertainty_ns / 1e6, 3),
            "samples": self.samples,
        }


def best_offset(samples: list[Sample]) -> ClockOffset:
    """The offset of the round trip with the shortest delay, +- half that delay."""
    if not samples:
        raise ValueError("no clock samples")
    fastest = min(samples, key=lambda s: s.delay_ns)
    return ClockOffset(fastest.offset_ns, max(0, fastest.delay_ns) / 2, len(samples))


async def estimate_offset(
    read_remote: Callable[[], Awaitable[RemoteStamps]],
    samples: int = DEFAULT_SAMPLES,
    local_ns: Callable[[], int] = time.monotonic_ns,
) -> ClockOffset:
    """Sample the host's clock `samples` times through read_remote; the best estimate."""
    if samples < 1:
        raise ValueError("samples must be at least 1")
    taken = []
    for _ in range(samples):
        t0 = local_ns()
        t1, t2 = await read_remote()
        t3 = local_ns()
        taken.append(Sample(t0, t1, t2, t3))
    return best_offset(taken)


async def agent_offset(
    channel: grpc.aio.Channel,
    metadata: tuple[tuple[str, str], ...] = (),
    samples: int = DEFAULT_SAMPLES,
    call_timeout_s: float = 5.0,
) -> ClockOffset:
    """The CLOCK_MONOTONIC offset of the host whose `xenmca agent` is at the channel's end."""
    stub = agent_grpc.AgentServiceStub(channel)

    async def read_remote() -> RemoteStamps:
        reply = await stub.ReadClock(
            agent_pb2.ReadClockRequest(), metadata=metadata, timeout=call_timeout_s
        )
        return reply.received_monotonic_ns, reply.sent_monotonic_ns

    return await estimate_offset(read_remote, samples)
