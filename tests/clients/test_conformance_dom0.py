"""The conformance cases of the minimal dom0 (conformance.yaml `dom0-*`): exactly the
injected records, each once, cleared, nothing pending; local versus IPI; `--max`;
`--out FILE` across a restart; attaching again to a restarted coordinator.

    python -m pytest -q tests/clients/test_conformance_dom0.py -k node
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from client_bed import ClientBed
from client_cases import (
    Ctx,
    _at_least,
    case,
    cleared,
    conformance_params,
    file_lines,
    key,
    keys,
    records,
    run_case,
)

pytestmark = [pytest.mark.clients, pytest.mark.slow, pytest.mark.timeout(180)]


# -- dom0 ----------------------------------------------------------------------------------


def check_lines(ctx: Ctx, lines: list[dict[str, Any]]) -> None:
    for line in lines:
        assert line["severity"] == "corrected", line
        assert isinstance(line["sections"], list) and len(line["sections"]) >= 1, line
        assert re.fullmatch(ctx.expect["created_at"], line["created_at"]), line["created_at"]
        assert isinstance(line["overflow"], bool), line


@case("dom0-logs-injected")
async def dom0_logs_injected(ctx: Ctx) -> None:
    bed = ctx.tb
    dom0 = await ctx.cli.start(
        "dom0", "--xen", bed.xen, *bed.credential_flags("dom0"), "--cpe-poll", "200"
    )
    await ctx.until(_attached(bed), 20, "the client's dom0 attached", dom0)

    cmc, cpe = ctx.expect["cmc"], ctx.expect["cpe"]
    expected = keys(cmc["pcpu"], await bed.inject(cmc["pcpu"], "cmc", cmc["count"]), "CMC")
    expected += keys(cpe["pcpu"], await bed.inject(cpe["pcpu"], "cpe", cpe["count"]), "CPE")
    total = len(expected)
    await ctx.until(lambda: len(dom0.out_lines) >= total, 30, f"{total} records logged", dom0)
    await cleared(ctx, total, dom0)

    # The client's status, while its own dom0 is attached.
    shown = await ctx.cli.run(
        "status", "--xen", bed.xen, *bed.credential_flags("operator"), "--json"
    )
    assert shown.code == 0 and shown.err == "", shown.describe()
    doc = json.loads(shown.out)
    assert doc["dom0_attached"] is True
    assert len(doc["pcpus"]) == 4
    assert doc["counters"]["records_cleared"] == str(total)
    assert int(doc["counters"]["ipi_calls"]) >= 2 * total, "GET and CLEAR of each by IPI"
    for queue in doc["queues"]:
        assert queue["depth"] == 0, queue
        assert not queue.get("in_flight"), queue
    text = await ctx.cli.run("status", "--xen", bed.xen, *bed.credential_flags("operator"))
    assert text.code == 0 and text.err == "", text.describe()
    for pattern in ctx.expect["text_patterns"]:
        assert re.search(pattern, text.out), f"{pattern!r} in:\n{text.out}"
    assert all(not any(p.values()) for p in (await bed.all_pending()).values()), (
        await bed.all_pending()
    )

    stopped = await dom0.stop()
    assert stopped.code == ctx.expect["stop_exit"], stopped.describe()
    assert re.fullmatch(ctx.pattern("stop_line"), stopped.err_lines[-1]), stopped.describe()
    logged = records(dom0.out_lines)
    assert len(logged) == total, f"exactly {total} lines: {dom0.out_lines}"
    assert len({key(line) for line in logged}) == total, "no duplicates"
    assert sorted(map(key, logged)) == sorted(expected)
    check_lines(ctx, logged)
    assert all(line["by_ipi"] is True for line in logged), "vCPU0 is on pCPU 0: all by IPI"


def _attached(bed: ClientBed) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool((await bed.state())["dom0_attached"])

    return check


@case("dom0-local-and-ipi")
async def dom0_local_and_ipi(ctx: Ctx) -> None:
    bed = ctx.tb
    remote, local = ctx.expect["remote"], ctx.expect["local"]
    expected = keys(remote["pcpu"], await bed.inject(remote["pcpu"], "cmc", remote["count"]), "CMC")
    expected += keys(local["pcpu"], await bed.inject(local["pcpu"], "cmc", local["count"]), "CMC")
    result = await ctx.cli.run(
        "dom0",
        "--xen",
        bed.xen,
        *bed.credential_flags("dom0"),
        "--max",
        str(ctx.expect["max"]),
        "--cpe-poll",
        "0",
    )
    assert result.code == ctx.expect["exit"], result.describe()
    assert re.fullmatch(ctx.pattern("stop_line"), result.err_lines[-1]), result.describe()
    logged = records(result.out.splitlines())
    assert sorted(map(key, logged)) == sorted(expected)
    for line in logged:
        assert line["by_ipi"] is (line["pcpu"] != 0), f"by_ipi of pCPU {line['pcpu']}: {line}"
    await cleared(ctx, len(expected))
    assert await bed.counter("local_calls") >= 2, "GET and CLEAR on pCPU 0 made locally"
    assert await bed.counter("ipi_calls") >= 2 * remote["count"]
    for pcpu in (remote["pcpu"], local["pcpu"]):
        assert (await bed.pending(pcpu))["cmc"] == 0, f"pCPU {pcpu} CMC pending"


@case("dom0-max-leaves-rest")
async def dom0_max_leaves_rest(ctx: Ctx) -> None:
    bed = ctx.tb
    pcpu, count, first_max = ctx.expect["pcpu"], ctx.expect["count"], ctx.expect["first_max"]
    ids = await bed.inject(pcpu, "cmc", count)
    base = ["dom0", "--xen", bed.xen, *bed.credential_flags("dom0"), "--cpe-poll", "0"]

    first = await ctx.cli.run(*base, "--max", str(first_max))
    assert first.code == ctx.expect["exit"], first.describe()
    logged = [key(line) for line in records(first.out.splitlines())]
    assert len(logged) == first_max == len(set(logged)), first.describe()
    assert set(logged) <= set(keys(pcpu, ids, "CMC")), (logged, ids)
    rest = sorted(set(ids) - {int(k[1]) for k in logged})
    assert await bed.pending_ids(pcpu, "cmc") == rest, "the rest stays in firmware"
    await cleared(ctx, first_max)

    second = await ctx.cli.run(*base, "--max", str(len(rest)))
    assert second.code == ctx.expect["exit"], second.describe()
    assert sorted(key(line) for line in records(second.out.splitlines())) == keys(pcpu, rest, "CMC")
    assert await bed.pending_ids(pcpu, "cmc") == []
    await cleared(ctx, count)


@case("dom0-out-dedupe-restart")
async def dom0_out_dedupe_restart(ctx: Ctx) -> None:
    bed = ctx.tb
    pcpu = ctx.expect["pcpu"]
    out = ctx.tmp / "dom0.jsonl"
    argv = ["dom0", "--xen", bed.xen, *bed.credential_flags("dom0"), "--cpe-poll", "0"]

    bed.fail_clears(pcpu)
    [first_id] = await bed.inject(pcpu, "cmc", 1)
    crashed = await ctx.cli.start(*argv, "--out", str(out))
    first_key = (pcpu, str(first_id), "CMC")
    await ctx.until(
        lambda: first_key in [key(r) for r in records(file_lines(out))], 20, "written", crashed
    )
    # Its CLEAR has gone out and failed at least once: written, not cleared.
    await ctx.until(lambda: _at_least(bed, "call_failures", 1), 15, "a failed CLEAR", crashed)
    await crashed.kill()
    assert crashed.out_lines == [], "with --out nothing goes to stdout"
    assert await bed.pending_ids(pcpu, "cmc") == [first_id], "the killed dom0 did not clear it"
    assert await bed.counter("records_cleared") == 0

    bed.clear_faults()
    [second_id] = await bed.inject(pcpu, "cmc", 1)
    restarted = await ctx.cli.start(*argv, "--out", str(out))

    async def both_cleared() -> bool:
        return await bed.pending_ids(pcpu, "cmc") == [] and len(file_lines(out)) >= 2

    await ctx.until(both_cleared, 30, "both records cleared, 2 in the file", restarted)
    await cleared(ctx, 2, restarted)
    stopped = await restarted.stop()
    assert stopped.code == ctx.expect["stop_exit"], stopped.describe()
    assert stopped.out == "", "with --out nothing goes to stdout"
    assert [key(r) for r in records(file_lines(out))] == [
        first_key,
        (pcpu, str(second_id), "CMC"),
    ], out.read_text()


@case("dom0-reattach")
async def dom0_reattach(ctx: Ctx) -> None:
    bed = ctx.tb
    pcpu = ctx.expect["pcpu"]
    dom0 = await ctx.cli.start(
        "dom0", "--xen", bed.xen, *bed.credential_flags("dom0"), "--cpe-poll", "0"
    )
    await ctx.until(_attached(bed), 20, "the client's dom0 attached", dom0)
    expected = keys(pcpu, await bed.inject(pcpu, "cmc", ctx.expect["before"]), "CMC")
    await ctx.until(lambda: len(dom0.out_lines) >= len(expected), 20, "logged", dom0)

    await bed.restart_coordinator()
    assert dom0.running, f"dom0 outlives its coordinator: {dom0.describe()}"
    await ctx.until(_attached(bed), 20, "dom0 attached to the new coordinator", dom0)
    expected += keys(pcpu, await bed.inject(pcpu, "cmc", ctx.expect["after"]), "CMC")
    await ctx.until(lambda: len(dom0.out_lines) >= len(expected), 20, "logged", dom0)
    await ctx.until(lambda: _no_pending(bed, pcpu), 15, f"nothing pending on pCPU {pcpu}", dom0)

    stopped = await dom0.stop()
    assert stopped.code == ctx.expect["stop_exit"], stopped.describe()
    assert sorted(map(key, records(dom0.out_lines))) == sorted(expected), dom0.out_lines


async def _no_pending(bed: ClientBed, pcpu: int) -> bool:
    return not any((await bed.pending(pcpu)).values())


# -- the driver ------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "case_id"), conformance_params(__name__))
async def test_conformance(language: str, case_id: str, tmp_path: Path) -> None:
    await run_case(language, case_id, tmp_path)
