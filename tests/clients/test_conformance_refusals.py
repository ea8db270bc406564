"""The conformance cases of refusals and mutual TLS (conformance.yaml `refuse-*` and
`tls-*`): a wrong or unknown identity by token or by certificate is refused with one
error line; with the right certificates status and dom0 work over TLS.

    python -m pytest -q tests/clients/test_conformance_refusals.py -k node
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from client_cases import (
    Ctx,
    assert_one_line,
    assert_refused,
    case,
    conformance_params,
    error_lines,
    file_lines,
    key,
    keys,
    records,
    run_case,
)

pytestmark = [pytest.mark.clients, pytest.mark.slow, pytest.mark.timeout(180)]


# -- refusals by identity ------------------------------------------------------------------


@case("refuse-dom0-as-operator")
async def refuse_dom0_as_operator(ctx: Ctx) -> None:
    bed = ctx.tb
    assert bed.tokens is not None
    assert await bed.operator_get("cmc") == ctx.expect["operator_get"]
    book = bed.token_book_file("swapped.json", {"dom0": bed.tokens.tokens["operator"]})
    result = await ctx.cli.run(
        "dom0", "--xen", bed.xen, "--token-file", str(book), "--cpe-poll", "0"
    )
    assert_refused(ctx, result, ctx.pattern("error_line"))
    assert (await bed.state())["dom0_attached"] is False


@case("refuse-dom0-unknown-token")
async def refuse_dom0_unknown_token(ctx: Ctx) -> None:
    bed = ctx.tb
    book = bed.token_book_file("unknown.json", {"dom0": "not-a-valid-token"})
    result = await ctx.cli.run(
        "dom0", "--xen", bed.xen, "--token-file", str(book), "--cpe-poll", "0"
    )
    assert_refused(ctx, result, ctx.pattern("error_line"))


@case("refuse-status-unknown-token")
async def refuse_status_unknown_token(ctx: Ctx) -> None:
    bed = ctx.tb
    assert bed.tokens is not None
    book = bed.token_book_file(
        "wrong.json", {"operator": "not-a-valid-token", "dom0": bed.tokens.tokens["operator"]}
    )
    result = await ctx.cli.run("status", "--xen", bed.xen, "--token-file", str(book))
    assert_one_line(ctx, result, ctx.pattern("error_line"))


# -- mutual TLS ----------------------------------------------------------------------------


@case("tls-status")
async def tls_status(ctx: Ctx) -> None:
    bed = ctx.tb
    result = await ctx.cli.run("status", "--xen", bed.xen, "--json", *bed.tls_flags("operator"))
    assert result.code == ctx.expect["exit"], result.describe()
    assert error_lines(ctx.cli, result.err_lines) == [], result.describe()
    doc = json.loads(result.out)
    assert len(doc["pcpus"]) == ctx.expect["pcpus"]
    assert all(p["connected"] is True for p in doc["pcpus"]), doc["pcpus"]


@case("tls-dom0-reads")
async def tls_dom0_reads(ctx: Ctx) -> None:
    bed = ctx.tb
    pcpu, count = ctx.expect["pcpu"], ctx.expect["count"]
    ids = await bed.inject(pcpu, "cmc", count)
    out = ctx.tmp / "dom0-tls.jsonl"
    result = await ctx.cli.run(
        "dom0",
        "--xen",
        bed.xen,
        *bed.tls_flags("dom0"),
        "--max",
        str(count),
        "--cpe-poll",
        "0",
        "--out",
        str(out),
        within=60,
    )
    assert result.code == ctx.expect["exit"], result.describe()
    logged = records(file_lines(out))
    assert sorted(map(key, logged)) == keys(pcpu, ids, "CMC")
    assert all(line["by_ipi"] is True for line in logged), "pCPU 1 is not vCPU0's: by IPI"
    assert (await bed.pending(pcpu))["cmc"] == 0


@case("tls-refuse-operator-cert")
async def tls_refuse_operator_cert(ctx: Ctx) -> None:
    bed = ctx.tb
    result = await ctx.cli.run(
        "dom0", "--xen", bed.xen, *bed.tls_flags("operator"), "--cpe-poll", "0"
    )
    assert_refused(ctx, result, ctx.pattern("error_line"))


@case("tls-refuse-plaintext")
async def tls_refuse_plaintext(ctx: Ctx) -> None:
    result = await ctx.cli.run("status", "--xen", ctx.tb.xen, "--timeout", "3000")
    assert_one_line(ctx, result, ctx.pattern("error_line"))


# -- the driver ------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "case_id"), conformance_params(__name__))
async def test_conformance(language: str, case_id: str, tmp_path: Path) -> None:
    await run_case(language, case_id, tmp_path)
