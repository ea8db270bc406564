"""The conformance cases without a testbed (conformance.yaml `usage-*` and
`unreachable-*`): usage errors and `--help`, and a coordinator nothing listens at.

    python -m pytest -q tests/clients/test_conformance_usage.py -k node
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest
from client_cases import (
    Ctx,
    assert_one_line,
    assert_refused,
    case,
    conformance_params,
    run_case,
)

pytestmark = [pytest.mark.clients, pytest.mark.slow, pytest.mark.timeout(180)]


def closed_address() -> str:
    """127.0.0.1 and a port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


# -- usage -----------------------------------------------------------------------------------


@case("usage-errors")
async def usage_errors(ctx: Ctx) -> None:
    for run in ctx.expect["runs"]:
        result = await ctx.cli.run(*run["argv"], within=15)
        assert_one_line(ctx, result, ctx.cli.pattern(run["line"]))


@case("usage-help")
async def usage_help(ctx: Ctx) -> None:
    result = await ctx.cli.run("--help", within=15)
    assert result.code == ctx.expect["exit"], result.describe()
    assert result.err == "", result.describe()
    assert re.fullmatch(ctx.pattern("first_line"), result.out.splitlines()[0]), result.out
    for word in ctx.expect["mentions"]:
        assert word in result.out, f"{word} in the usage:\n{result.out}"


# -- an unreachable coordinator ----------------------------------------------------------------


@case("unreachable-status")
async def unreachable_status(ctx: Ctx) -> None:
    address = closed_address()
    result = await ctx.cli.run("status", "--xen", address, "--timeout", "3000")
    assert_one_line(ctx, result, ctx.pattern("error_line", address))


@case("unreachable-dom0")
async def unreachable_dom0(ctx: Ctx) -> None:
    address = closed_address()
    started = time.monotonic()
    result = await ctx.cli.run("dom0", "--xen", address, "--connect-timeout", "300")
    assert_refused(ctx, result, ctx.pattern("error_line", address))
    assert time.monotonic() - started < 20, "gives up after about --connect-timeout"


# -- the driver ------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "case_id"), conformance_params(__name__))
async def test_conformance(language: str, case_id: str, tmp_path: Path) -> None:
    await run_case(language, case_id, tmp_path)
