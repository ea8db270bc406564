"""A paced injection creates each record when it is due, even when its timers fire a
little early, as uvloop's do (its clock is read once per loop pass): the pacer must not
then wait a whole batching tick (PACE_TICK) and create the record late.

Real pCPU server on port 0, on a fake clock whose every sleep ends early.
"""

from __future__ import annotations

import paced_injections_helpers
import pytest
from paced_injections_helpers import PcpuFactory
from paced_injections_helpers import make_pcpu as make_pcpu

from xenmca.pcpu.firmware import PACE_TICK
from xenmca.rpc.clock import FakeClock

EARLY = 0.0004


class EarlyClock(FakeClock):
    """Every sleep ends up to EARLY seconds before its time."""

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds - min(EARLY, seconds / 2))


async def test_records_are_created_on_time_when_timers_fire_early(
    make_pcpu: PcpuFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paced_injections_helpers, "FakeClock", EarlyClock)
    pcpu = await make_pcpu()
    created_at: list[float] = []
    pcpu.log.subscribe(
        lambda event: (
            created_at.append(pcpu.clock.now()) if event["kind"] == "records_created" else None
        )
    )
    start = pcpu.clock.now()
    await pcpu.inject(8, 2.0)  # one record every 0.5 s
    await pcpu.until_events("records_created", 1)
    for _ in range(40):
        await pcpu.clock.advance(0.1)
    assert len(created_at) == 8
    lateness = [at - (start + k / 2.0) for k, at in enumerate(created_at)]
    # Each on time to within the early wake-ups, never a tick (10 ms) late.
    assert max(lateness) < PACE_TICK / 10
    assert min(lateness) > -1e-6  # (float rounding of the due times)
