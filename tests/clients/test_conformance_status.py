"""The conformance cases of `status` (conformance.yaml `status-*`): the text and the
`--json` views of DescribeHypervisor, checked against the state the testbed reports.

    python -m pytest -q tests/clients/test_conformance_status.py -k node
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from client_bed import ClientBed
from client_cases import (
    Ctx,
    case,
    conformance_params,
    run_case,
)

pytestmark = [pytest.mark.clients, pytest.mark.slow, pytest.mark.timeout(180)]


def label(record_type: str) -> str:
    return record_type.removeprefix("RECORD_TYPE_")


async def settled_state(ctx: Ctx, interrupts: int) -> dict[str, Any]:
    """DescribeHypervisor once the coordinator has seen this many interrupts (no dom0 yet)."""
    return await ctx.until(
        lambda: _state_if(ctx.tb, interrupts), 10, f"{interrupts} interrupts at the coordinator"
    )


async def _state_if(bed: ClientBed, interrupts: int) -> dict[str, Any] | None:
    state = await bed.state()
    return state if int(state["counters"]["interrupts"]) >= interrupts else None


# -- status --------------------------------------------------------------------------------


@case("status-text")
async def status_text(ctx: Ctx) -> None:
    bed = ctx.tb
    await bed.inject(1, "cmc", 2)
    state = await settled_state(ctx, 2)
    result = await ctx.cli.run("status", "--xen", bed.xen, *bed.credential_flags("operator"))
    assert await bed.state() == state, "the state did not move while the client read it"
    assert result.code == ctx.expect["exit"], result.describe()
    assert result.err == "", result.describe()
    lines = result.out.splitlines()
    assert lines and re.fullmatch(ctx.pattern("first_line"), lines[0]), result.out
    for pattern in ctx.expect["patterns"]:
        assert re.search(pattern, result.out), f"{pattern!r} in:\n{result.out}"
    queues_at = lines.index("queues")
    counters_at = lines.index("counters")
    cmc = [q for q in state["queues"] if q["type"] == "RECORD_TYPE_CMC"]
    assert cmc and cmc[0]["depth"] >= 1, state["queues"]
    for queue in state["queues"]:
        row = rf"\s*{label(queue['type'])}\s+{queue['depth']}(\s.*)?"
        assert any(re.fullmatch(row, line) for line in lines[queues_at:counters_at]), (
            f"queue row {row!r} in:\n{result.out}"
        )
    for name, value in state["counters"].items():
        row = rf"\s*{name}\s+{value}\s*"
        assert any(re.fullmatch(row, line) for line in lines[counters_at:]), (
            f"counter row {name} {value} in:\n{result.out}"
        )


@case("status-json")
async def status_json(ctx: Ctx) -> None:
    bed = ctx.tb
    await bed.inject(1, "cmc", 2)
    state = await settled_state(ctx, 2)
    result = await ctx.cli.run(
        "status", "--xen", bed.xen, *bed.credential_flags("operator"), "--json"
    )
    assert await bed.state() == state, "the state did not move while the client read it"
    assert result.code == ctx.expect["exit"], result.describe()
    assert result.err == "", result.describe()
    doc = json.loads(result.out)
    assert isinstance(doc, dict), result.out
    for name in ctx.expect["present_even_if_zero"]:
        assert name in doc, f"{name} shown even when zero/false: {sorted(doc)}"
    assert doc["vcpu0_pcpu"] == 0
    assert doc["dom0_attached"] is False
    pcpus = sorted((p["pcpu"], p["address"], p["connected"]) for p in doc["pcpus"])
    assert pcpus == [(p, a, True) for p, a in sorted(bed.host.addresses.items())]
    assert doc["injected_types"] == state["injected_types"]
    depths = {q["type"]: q["depth"] for q in doc["queues"]}
    assert set(depths) == {q["type"] for q in state["queues"]}, doc["queues"]
    for queue in state["queues"]:
        assert isinstance(depths[queue["type"]], int), doc["queues"]
        assert depths[queue["type"]] == queue["depth"], (queue, doc["queues"])
    for name, value in state["counters"].items():
        assert doc["counters"].get(name) == value, (
            f"counter {name}: {doc['counters'].get(name)!r}, expected the string {value!r}"
        )
    assert doc["counters"]["interrupts"] == "2"
    assert doc["policy"]["name"] == state["policy"]["name"]
    assert len(doc["throttle"]) == len(state["throttle"])
    assert all(t["mode"].startswith("THROTTLE_MODE_") for t in doc["throttle"]), doc["throttle"]


# -- the driver ------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "case_id"), conformance_params(__name__))
async def test_conformance(language: str, case_id: str, tmp_path: Path) -> None:
    await run_case(language, case_id, tmp_path)
