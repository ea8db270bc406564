"""The seed's two-pCPU figure: dom0's vCPU0 runs on pCPU 0, so a CMC record on pCPU 0 is read
and cleared locally, and one on pCPU 1 by IPI; each logged once, then cleared."""

import pytest

from xenmca.testing.testbed import Testbed

FLOW_KINDS = {"injected", "get_local", "get_ipi", "record_copied", "clear_local", "clear_ipi"}


@pytest.mark.asyncio
@pytest.mark.xenmca(pcpus=2, vcpu0_pcpu=0)
async def test_local_read_on_vcpu0s_pcpu_ipi_for_the_other(xenmca_testbed: Testbed) -> None:
    bed = xenmca_testbed
    local = await bed.inject(0)
    await bed.wait_logged(local)
    remote = await bed.inject(1)
    log = await bed.wait_logged(remote)

    assert log.keys == [*local, *remote]
    assert [(r.pcpu, r.type) for r in log.records] == [(0, "CMC"), (1, "CMC")]
    flow = [
        (e["kind"], e["pcpu"])
        for e in bed.watch.events
        if e["component"] == "xen" and e["kind"] in FLOW_KINDS
    ]
    assert flow == [
        ("injected", 0),
        ("get_local", 0),
        ("record_copied", 0),
        ("clear_local", 0),
        ("injected", 1),
        ("get_ipi", 1),
        ("record_copied", 1),
        ("clear_ipi", 1),
    ]
    assert [(e["pcpu"], e["by_ipi"]) for e in bed.events("record_read", component="dom0")] == [
        (0, False),
        (1, True),
    ]
    counters = bed.coordinator.counters
    assert (counters.local_calls, counters.ipi_calls) == (2, 2)
    report = await bed.check()
    report.assert_valid()
    assert (report.accounting.logged, report.accounting.pending) == (2, 0)
