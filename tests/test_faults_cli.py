"""`xenmca fault add|list|clear` as a real process against real servers on the test's loop."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_process import xenmca

from xenmca.pcpu.server import PcpuHost
from xenmca.rpc.fault_rules import FaultAction
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook, call_metadata
from xenmca.testbed.infra import fault_client


@dataclass
class Target:
    host: PcpuHost
    address: str
    token_file: Path
    tokens: TokenBook


@pytest.fixture
async def target(tmp_path: Path) -> AsyncIterator[Target]:
    tokens = TokenBook.generate(DOM0, OPERATOR, XEN)
    token_file = tmp_path / "tokens.json"
    tokens.save(token_file)
    host = PcpuHost([0, 1], token_book=tokens)
    await host.start()
    try:
        yield Target(host, host.addresses[1], token_file, tokens)
    finally:
        await host.stop(grace=None)


async def test_add_list_clear(target: Target) -> None:
    token = ("--token-file", str(target.token_file))
    common = ("--pcpu", target.address, *token)
    added = await xenmca(
        "fault",
        "add",
        "--pcpu",
        f"1={target.address}",  # the rule narrowed to pCPU 1
        *token,
        "--method",
        "SalService.ClearStateInfo",
        "--action",
        "drop-reply",
        "--count",
        "2",
        "--skip",
        "1",
        "--duration",
        "600",
    )
    assert added.code == 0, added.err
    fault_id = added.out.strip()
    delayed = await xenmca(
        "fault",
        "add",
        *common,
        "--method",
        "xenmca.sal.v1.SalService/GetStateInfo",
        "--action",
        "delay",
        "--delay",
        "0.25",
    )
    assert delayed.code == 0, delayed.err
    (first, second) = target.host.faults.list()
    assert first.fault_id == fault_id
    assert (first.spec.action, first.spec.pcpu, first.spec.count, first.spec.skip) == (
        FaultAction.DROP_REPLY,
        1,
        2,
        1,
    )
    assert first.spec.duration == 600 and second.spec.delay == 0.25

    listed = await xenmca("fault", "list", *common, "--json")
    assert listed.code == 0, listed.err
    rules = json.loads(listed.out)
    operator = call_metadata(target.tokens.token_for(OPERATOR))
    assert rules == await fault_client.list_faults(target.address, operator)
    assert [(r["fault_id"], r["action"], r["pcpu"]) for r in rules] == [
        (fault_id, "drop-reply", 1),
        (delayed.out.strip(), "delay", None),
    ]
    table = await xenmca("fault", "list", *common)
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0].split()[:4] == ["ID", "METHOD", "PCPU", "ACTION"]
    assert "xenmca.sal.v1.SalService/ClearStateInfo" in lines[1] and "active" in lines[1]
    assert "delay 0.25s" in lines[2]

    # N=HOST:PORT lists the rules that act on pCPU N, and clears those narrowed to it.
    on_pcpu_0 = await xenmca("fault", "list", "--pcpu", f"0={target.address}", *token, "--json")
    assert [r["fault_id"] for r in json.loads(on_pcpu_0.out)] == [delayed.out.strip()]
    one = await xenmca("fault", "clear", "--pcpu", f"1={target.address}", *token)
    assert (one.code, one.out.strip()) == (0, "cleared 1 fault rule")
    assert [f.fault_id for f in target.host.faults.list()] == [delayed.out.strip()]
    rest = await xenmca("fault", "clear", *common, "--id", delayed.out.strip())
    assert (rest.code, rest.out.strip()) == (0, "cleared 1 fault rule")
    empty = await xenmca("fault", "list", *common)
    assert (empty.code, empty.out.strip()) == (0, "no fault rules")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--method", "SalService.Nope", "--action", "fail"), "--method: unknown method"),
        (("--method", "SalService.GetStateInfo", "--action", "delay"), "--delay:"),
        (("--method", "SalService.GetStateInfo", "--action", "fail", "--delay", "1"), "--delay:"),
        (("--method", "SalService.GetStateInfo", "--action", "explode"), "--action"),
        (("--method", "SalService.GetStateInfo", "--action", "fail", "--count", "-1"), "--count"),
        (("--method", "SalService.GetStateInfo", "--action", "fail", "--duration", "x"), "seconds"),
    ],
)
async def test_bad_input_is_one_line_and_exit_2(
    target: Target, args: tuple[str, ...], message: str
) -> None:
    result = await xenmca("fault", "add", "--pcpu", target.address, *args)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1 and message in result.err
    assert target.host.faults.list() == ()


async def test_refusals_are_one_line_and_exit_2(target: Target, tmp_path: Path) -> None:
    dom0_only = tmp_path / "dom0.json"
    TokenBook({DOM0: target.tokens.token_for(DOM0) or ""}).save(dom0_only)
    no_token = await xenmca("fault", "list", "--pcpu", target.address)
    assert no_token.code == 2 and "UNAUTHENTICATED [MISSING_CREDENTIALS]" in no_token.err
    # A token file without the operator's token presents none.
    wrong = await xenmca("fault", "list", "--pcpu", target.address, "--token-file", str(dom0_only))
    assert wrong.code == 2 and "UNAUTHENTICATED" in wrong.err
    served = await xenmca(
        "fault",
        "add",
        "--pcpu",
        target.address,
        "--token-file",
        str(target.token_file),
        "--method",
        "HypervisorService.ClearStateInfo",
        "--action",
        "fail",
    )
    assert served.code == 2 and "INVALID_ARGUMENT [METHOD_NOT_SERVED]" in served.err
    assert len(served.err.strip().splitlines()) == 1


def test_rule_dicts_are_checked_before_any_call() -> None:
    rule = fault_client.rule_from_dict(
        {"method": "SalService.ClearStateInfo", "action": "DROP_REPLY", "pcpu": 3, "count": 1}
    )
    assert rule.method == "xenmca.sal.v1.SalService/ClearStateInfo" and rule.pcpu == 3
    for bad, key in (
        ({"method": "SalService.ClearStateInfo"}, "'action'"),
        ({"method": "SalService.ClearStateInfo", "action": "fail", "when": 3}, "'when'"),
        ({"method": "SalService.ClearStateInfo", "action": "fail", "count": True}, "'count'"),
        ({"method": "SalService.ClearStateInfo", "action": "fail", "delay": "1s"}, "'delay'"),
        ({"method": "SalService.ClearStateInfo", "action": "fail", "skip": -1}, "'skip'"),
    ):
        with pytest.raises(ValueError, match=key):
            fault_client.rule_from_dict(bad)
