"""`xenmca inject --list / --cancel` as a real process against a real host: listing and
cancelling, and bad input in one line with exit status 2.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_process import xenmca

from xenmca.pcpu.server import PcpuHost
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook


@dataclass
class Host:
    host: PcpuHost
    common: tuple[str, ...]


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    tokens = TokenBook.generate(DOM0, OPERATOR, XEN)
    token_file = tmp_path / "tokens.json"
    tokens.save(token_file)
    pcpus = PcpuHost([0], token_book=tokens)
    await pcpus.start()
    try:
        yield Host(pcpus, ("--pcpu", pcpus.addresses[0], "--token-file", str(token_file)))
    finally:
        await pcpus.stop(grace=None)


async def test_cli_lists_and_cancels(host: Host) -> None:
    started = await xenmca(
        "inject", *host.common, "--type", "cpe", "--count", "1000", "--rate", "0.5"
    )
    assert (started.code, started.out.strip()) == (
        0,
        "accepted 1000, paced at 0.5/s as injection 1",
    ), started.err

    listed = await xenmca("inject", *host.common, "--list", "--json")
    assert listed.code == 0, listed.err
    (entry,) = json.loads(listed.out)
    assert {k: entry[k] for k in ("injection_id", "type", "severity", "count")} == {
        "injection_id": 1,
        "type": "CPE",
        "severity": "CORRECTED",
        "count": 1000,
    }
    assert entry["created"] >= 1 and entry["rate_per_second"] == 0.5
    assert entry["created"] == entry["stored"] + entry["overflowed"]
    table = await xenmca("inject", *host.common, "--list")
    header, row = table.out.splitlines()
    assert header.split() == ["ID", "TYPE", "SEVERITY", "RATE/S", "CREATED", "COUNT", "STARTED"]
    assert row.split()[:4] == ["1", "CPE", "CORRECTED", "0.5"]

    cancelled = await xenmca("inject", *host.common, "--cancel", "1")
    assert cancelled.code == 0, cancelled.err
    assert cancelled.out.startswith("cancelled injection 1: created ")
    assert host.host.servers[0].firmware.injections() == []
    empty = await xenmca("inject", *host.common, "--list")
    assert (empty.code, empty.out.strip()) == (0, "no paced injections")

    again = await xenmca("inject", *host.common, "--cancel", "1")
    assert again.code == 2 and len(again.err.strip().splitlines()) == 1
    assert "NOT_FOUND [INJECTION_NOT_FOUND]" in again.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--list", "--type", "cmc"), "--list does not take --type"),
        (("--cancel", "2", "--rate", "5"), "--cancel does not take --rate"),
        (("--list", "--cancel", "1"), "not allowed with argument"),
        (("--cancel", "0"), "injection ids are 1 or more"),
        (("--cancel", "x"), "not an injection id"),
        ((), "--type is required"),
        (("--type", "cmc", "--count", "5", "--rate", "1e-300"), "[RATE_TOO_LOW]"),
        (("--type", "cmc", "--count", "100000", "--rate", "1"), "[INJECTION_TOO_LONG]"),
    ],
)
async def test_cli_bad_input_is_one_line_and_exit_2(
    host: Host, args: tuple[str, ...], message: str
) -> None:
    result = await xenmca("inject", *host.common, *args)
    assert result.code == 2, result
    assert len(result.err.strip().splitlines()) == 1 and message in result.err, result.err
    assert host.host.servers[0].firmware.paced_injections == 0
