"""Pipelined mode: read-ahead by IPI and early CLEAR answers keep every invariant."""

from __future__ import annotations

import grpc
import pytest

from xenmca.testing.testbed import Testbed


@pytest.mark.xenmca(pcpus=3, vcpu0_pcpu=0, pipelined=True)
async def test_every_record_once_with_read_ahead(xenmca_testbed: Testbed) -> None:
    bed = xenmca_testbed.flow
    for pcpu in range(3):
        await bed.inject(pcpu, count=5)
    await bed.watch.until(lambda: bed.coordinator.counters.records_cleared == 15)
    log = await xenmca_testbed.read_log()
    keys = set(log.keys)
    assert len(keys) == 15 and {p for p, _ in keys} == {0, 1, 2}
    assert log.duplicates_dropped == 0
    for pcpu in range(3):
        state = await bed.pending(pcpu)
        assert (state.pending, state.cleared) == (0, 5)
    assert any(e.get("read_ahead") for e in bed.watch.matching("get_ipi"))


@pytest.mark.xenmca(pcpus=2, vcpu0_pcpu=0, pipelined=True)
async def test_a_clear_lost_for_good_is_delivered_again_and_logged_once(
    xenmca_testbed: Testbed,
) -> None:
    bed = xenmca_testbed.flow
    link = bed.coordinator.links[1]
    real_clear = link.stub.ClearStateInfo
    failures = 0

    async def unreachable_for_a_while(request, **kwargs):
        nonlocal failures
        if failures < 4:  # every attempt of the first CLEAR fails
            failures += 1
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down"
            )
        return await real_clear(request, **kwargs)

    link.stub.ClearStateInfo = unreachable_for_a_while
    await bed.inject(1)  # dom0 is attached already: the CLEAR fails from the first
    await bed.watch.wait_for("entry_requeued", why="clear_failed", within=20)
    await bed.watch.until(lambda: bed.coordinator.counters.records_cleared == 1, 20)
    log = await xenmca_testbed.read_log()
    assert len(log.records) == 1
    assert log.duplicates_dropped == 1  # the re-delivery was recognised
    state = await bed.pending(1)
    assert (state.pending, state.cleared) == (0, 1)
