"""Paced injections' bounds (issue 12 item 4): rates too slow to end in bounded time and
injections longer than a day are refused by the pCPU, the scenario loader refuses the
same, and every shipped storm is within them.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from paced_injections_helpers import (
    CMC,
    CPE,
    Pcpu,
)
from paced_injections_helpers import make_pcpu as make_pcpu
from paced_injections_helpers import pcpu as pcpu
from refusals import refused

from xenmca.pcpu import validation
from xenmca.pcpu.firmware import MAX_PACED_INJECTIONS
from xenmca.record.v1 import record_pb2
from xenmca.sal.v1 import sal_service_pb2 as sal
from xenmca.testbed.run.workload_plan import SEVERITY_VALUES, plan_injections
from xenmca.testbed.scenario.errors import ScenarioError
from xenmca.testbed.scenario.loader import SCENARIO_DIR, load_scenario, parse_scenario_text
from xenmca.vocab import TYPES_BY_NAME

ROOT = Path(__file__).resolve().parent.parent


async def test_the_slowest_rate_attack_is_refused_and_a_storm_still_starts(pcpu: Pcpu) -> None:
    before = await pcpu.stub.DescribePcpu(sal.DescribePcpuRequest())
    for _ in range(MAX_PACED_INJECTIONS):
        await refused(
            pcpu.inject(2, 1e-300),
            grpc.StatusCode.INVALID_ARGUMENT,
            "RATE_TOO_LOW",
            "rate_per_second",
        )
    assert await pcpu.stub.DescribePcpu(sal.DescribePcpuRequest()) == before
    assert pcpu.server.firmware.paced_injections == 0 and await pcpu.listed() == []

    storm = await pcpu.inject(400, 200.0)  # two seconds at 200/s
    assert storm.accepted == 400 and storm.injection_id == 1
    await pcpu.until_events("records_created", 1)
    await pcpu.clock.advance(2.0)
    await pcpu.server.firmware.wait_paced()
    state = await pcpu.state()
    assert (state.created, state.pending + state.overflowed) == (400, 400)
    (finished,) = pcpu.kinds("injection_finished")
    assert finished["injection_id"] == 1 and finished["complete"]


async def test_a_paced_injection_must_end_within_a_day(pcpu: Pcpu) -> None:
    too_long = [(86_401, 1.0), (1_000_000, 1.0), (87, 0.001), (1, 0.000999)]
    for count, rate in too_long:
        reason = "RATE_TOO_LOW" if rate < 0.001 else "INJECTION_TOO_LONG"
        field = "rate_per_second" if rate < 0.001 else "count"
        await refused(pcpu.inject(count, rate), grpc.StatusCode.INVALID_ARGUMENT, reason, field)
    assert (await pcpu.state()).created == 0 and pcpu.server.firmware.paced_injections == 0

    # Exactly a day passes: a storm of a day at 1/s, and 86 records at the slowest rate.
    day = await pcpu.inject(86_400, 1.0)
    slowest = await pcpu.inject(86, 0.001, CPE)
    assert (day.injection_id, slowest.injection_id) == (1, 2)
    assert [i.injection_id for i in await pcpu.listed()] == [1, 2]
    for injection_id in (1, 2):
        await pcpu.cancel(injection_id)
    # At the slowest rate, an injection still ends in bounded time: 3 records in 3000 s.
    few = await pcpu.inject(3, 0.001, record_pb2.RECORD_TYPE_MCA)
    await pcpu.clock.advance(2500.0)
    assert await pcpu.listed() == []
    (finished,) = pcpu.kinds("injection_finished")
    assert (finished["injection_id"], finished["created"]) == (few.injection_id, 3)
    assert finished["complete"]


@pytest.mark.parametrize(
    "path",
    [*sorted(SCENARIO_DIR.glob("*.yaml")), ROOT / "scenarios" / "soak-100k.yaml"],
    ids=lambda p: p.name,
)
def test_every_shipped_storm_passes_the_pcpus_limits(path: Path) -> None:
    for planned in plan_injections(load_scenario(path)):
        validation.injection(
            sal.InjectErrorRequest(
                type=TYPES_BY_NAME[planned.type],  # type: ignore[arg-type]
                severity=SEVERITY_VALUES[planned.severity],  # type: ignore[arg-type]
                count=planned.count,
                rate_per_second=planned.rate,
            )
        )


SCENARIO_DAY = "name: t\nseed: 1\npcpus: 2\nduration_s: 86400\n"


@pytest.mark.parametrize(
    ("storm", "message"),
    [
        ("{rate: 1e-300, duration_s: 1}", "too slow for a paced injection; at least 0.001"),
        ("{rate: 0.0009, duration_s: 86400}", "too slow for a paced injection; at least 0.001"),
        # rate * duration_s rounds up to 130 records: 86 667 s at 0.0015/s.
        ("{rate: 0.0015, duration_s: 86400}", "130 records at 0.0015/s take 86,667 s"),
    ],
)
def test_the_scenario_loader_refuses_what_the_pcpu_would(storm: str, message: str) -> None:
    text = SCENARIO_DAY + "workload: {storms: [{type: cmc, pcpus: [1], " + storm[1:] + "]}"
    with pytest.raises(ScenarioError) as raised:
        parse_scenario_text(text, "t.yaml")
    assert str(raised.value).startswith("t.yaml: workload.storms[0].rate: "), raised.value
    assert message in str(raised.value)


@pytest.mark.parametrize("storm", ["{rate: 1, duration_s: 86400}", "{rate: 0.001, duration_s: 5}"])
def test_a_storm_of_a_day_and_the_slowest_storm_load_and_validate(storm: str) -> None:
    text = SCENARIO_DAY + "workload: {storms: [{type: cmc, pcpus: [1], " + storm[1:] + "]}"
    (planned,) = plan_injections(parse_scenario_text(text, "t.yaml"))
    validation.injection(
        sal.InjectErrorRequest(type=CMC, count=planned.count, rate_per_second=planned.rate)
    )
