"""A lost IPI reply: the pCPU did the call, its answer never reached the coordinator. The call
is retried, and the record is logged exactly once and cleared exactly once."""

import pytest

from xenmca.testing.testbed import Testbed


@pytest.mark.asyncio
@pytest.mark.xenmca(pcpus=2, vcpu0_pcpu=0)
@pytest.mark.parametrize("method", ["SalService.GetStateInfo", "SalService.ClearStateInfo"])
async def test_a_lost_ipi_reply_is_retried_and_the_record_logged_once(
    xenmca_testbed: Testbed, method: str
) -> None:
    bed = xenmca_testbed
    await bed.add_fault(method, "drop-reply", pcpu=1, count=1)
    keys = await bed.inject(1)  # pCPU 1: read and cleared by IPI
    log = await bed.wait_logged(keys)

    fired = bed.events("fault_fired", component="pcpu")
    assert [(e["method"], e["pcpu"]) for e in fired] == [
        ("xenmca.sal.v1." + method.replace(".", "/"), 1)
    ]
    assert bed.events("call_retry", component="xen", pcpu=1)
    assert log.keys == keys and log.duplicates_dropped == 0
    state = await bed.flow.pending(1)
    assert (state.pending, state.cleared) == (0, 1)
    report = await bed.check()
    report.assert_valid()
    assert (report.accounting.logged, report.accounting.duplicates) == (1, 0)
