"""A storm on one pCPU throttles only that pCPU's line, and every record is still accounted for."""

from __future__ import annotations

import asyncio

import pytest

from xenmca.testing.config import BedConfig
from xenmca.testing.testbed import Testbed

STORM_PCPU = 1
STORM_RATE = 20_000.0
STORM_COUNT = 40_000  # two seconds of storm
# Below the storm rule (5 within 1 s) so these lines stay in interrupt mode.
QUIET_RATE = 2.5
QUIET_COUNT = 6


@pytest.fixture(params=[False, True], ids=["serial", "pipelined"])
def xenmca_config(request: pytest.FixtureRequest) -> BedConfig:
    return BedConfig(pcpus=4, vcpu0_pcpu=0, pipelined=request.param)


async def test_storm_on_one_pcpu_leaves_the_others_in_interrupt_mode(
    xenmca_testbed: Testbed,
) -> None:
    bed = xenmca_testbed.flow
    store = xenmca_testbed.dom0.store
    assert store is not None
    await bed.inject(STORM_PCPU, count=STORM_COUNT, rate=STORM_RATE)
    for quiet in (0, 2, 3):
        await bed.inject(quiet, count=QUIET_COUNT, rate=QUIET_RATE)
    await bed.watch.wait_for("throttle_transition", pcpu=STORM_PCPU, new="polling", within=10)
    firmware = [bed.host.servers[p].firmware for p in range(4)]
    await asyncio.gather(*(f.wait_paced() for f in firmware))
    await bed.watch.wait_for("throttle_transition", pcpu=STORM_PCPU, new="interrupt", within=10)
    states = [await bed.pending(p) for p in range(4)]
    stored = sum(s.created - s.overflowed for s in states)
    await bed.watch.until(lambda: bed.coordinator.counters.records_cleared >= stored, within=60)
    states = [await bed.pending(p) for p in range(4)]
    await xenmca_testbed.stop_dom0(grace=5.0)  # as before: counted once dom0 has stopped
    log = await xenmca_testbed.read_log()
    counts = {p: sum(1 for r in log.records if r.pcpu == p) for p in range(4)}
    transitions = bed.watch.matching("throttle_transition")
    assert {e["pcpu"] for e in transitions} == {STORM_PCPU}
    assert [e["new"] for e in transitions] == ["polling", "interrupt"]
    assert states[STORM_PCPU].created == STORM_COUNT
    logged_by_pcpu = {p: counts.get(p, 0) for p in range(4)}
    for pcpu, state in enumerate(states):
        # Conservation per pCPU: logged + pending + overflowed == created.
        assert state.pending == 0
        assert logged_by_pcpu[pcpu] + state.overflowed == state.created, pcpu
    for quiet in (0, 2, 3):
        assert states[quiet].overflowed == 0 and logged_by_pcpu[quiet] == QUIET_COUNT
    assert states[STORM_PCPU].overflowed > 0  # the store's capacity is explicit
    assert log.duplicates_dropped == 0
    assert bed.coordinator.counters.polls > 0
    assert bed.coordinator.counters.polled_records > 0
