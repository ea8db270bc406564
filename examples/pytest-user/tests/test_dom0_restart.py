"""dom0 stops mid-way (a record committed to its log, its CLEAR not answered) and a new dom0
attaches: nothing is lost and nothing is logged twice."""

import pytest

from xenmca.testing.testbed import Testbed


@pytest.mark.asyncio
@pytest.mark.xenmca(pcpus=2, vcpu0_pcpu=0)
async def test_dom0_restarted_mid_way_loses_and_duplicates_nothing(
    xenmca_testbed: Testbed,
) -> None:
    bed = xenmca_testbed
    # dom0's third CLEAR is held at the coordinator, before it acts.
    await bed.add_fault("HypervisorService.ClearStateInfo", "delay", delay=60.0, skip=2, count=1)
    before = await bed.inject(0, count=3) + await bed.inject(1, count=3)
    await bed.watch.wait_for("fault_fired", component="xen")
    committed = {(e["pcpu"], e["record_id"]) for e in bed.events("record_committed")}
    assert len(committed) == 3  # the third record is in the log, its CLEAR unanswered

    await bed.stop_dom0()  # at once, mid-call
    during = await bed.inject(0, count=2)  # while no dom0 is attached
    await bed.start_dom0()
    log = await bed.wait_logged()

    assert sorted(log.keys) == sorted(before + during)  # each record once
    assert log.duplicates_dropped == 1  # the held record came again and was recognised
    report = await bed.check()
    report.assert_valid()
    assert (report.accounting.lost, report.accounting.duplicates) == (0, 0)
    assert report.accounting.redelivered == 1
