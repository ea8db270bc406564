"""Pipelined mode: read-ahead by IPI and early CLEAR answers keep every invariant."""

from __future__ import annotations

import grpc
from flow_harness import flow_bed

from xenmca.dom0.log_store import LogStore
from xenmca.dom0.logger import Dom0Logger
from xenmca.rpc.identity import DOM0


async def test_every_record_once_with_read_ahead(tmp_path) -> None:
    async with flow_bed(pcpus=3, vcpu0_pcpu=0, pipelined=True) as bed:
        for pcpu in range(3):
            await bed.inject(pcpu, count=5)
        store = await LogStore.open(tmp_path / "dom0.sqlite")
        logger = Dom0Logger(bed.xen_address, store, token=bed.tokens.token_for(DOM0))
        await logger.start()
        try:
            await bed.watch.until(lambda: bed.coordinator.counters.records_cleared == 15)
        finally:
            await logger.stop()
        keys = {(r.pcpu, r.record_id) for r in await store.list_records()}
        assert len(keys) == 15 and {p for p, _ in keys} == {0, 1, 2}
        assert await store.duplicates_dropped() == 0
        for pcpu in range(3):
            state = await bed.pending(pcpu)
            assert (state.pending, state.cleared) == (0, 5)
        assert any(e.get("read_ahead") for e in bed.watch.matching("get_ipi"))
        await store.close()


async def test_a_clear_lost_for_good_is_delivered_again_and_logged_once(tmp_path) -> None:
    async with flow_bed(pcpus=2, vcpu0_pcpu=0, pipelined=True) as bed:
        await bed.inject(1)
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
        store = await LogStore.open(tmp_path / "dom0.sqlite")
        logger = Dom0Logger(bed.xen_address, store, token=bed.tokens.token_for(DOM0))
        await logger.start()
        try:
            await bed.watch.wait_for("entry_requeued", why="clear_failed", within=20)
            await bed.watch.until(lambda: bed.coordinator.counters.records_cleared == 1, 20)
        finally:
            await logger.stop()
        assert len(await store.list_records()) == 1
        assert await store.duplicates_dropped() == 1  # the re-delivery was recognised
        state = await bed.pending(1)
        assert (state.pending, state.cleared) == (0, 1)
        await store.close()
