"""One way to use every command: --version, target flags, --json, exit statuses, SIGPIPE,
deprecated spellings and shell completion (issue 13, "consistent commands")."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import grpc
import pytest

from xenmca import exit_status
from xenmca.cli import build_parser, main
from xenmca.cli_common import message_json, rpc_exit_status
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.ops.fault import target_of
from xenmca.pcpu.server import PcpuHost
from xenmca.rpc.flags import PcpuAddress
from xenmca.rpc.identity import OPERATOR, TOKEN_FILE_ENV, XEN, TokenBook
from xenmca.testbed.hazards import command as hazards_command
from xenmca.testbed.hazards.matrix import Cell
from xenmca.testbed.infra.processes import ProcessStartError
from xenmca.testbed.run.command import exit_status as run_exit_status

WARNING = "is deprecated and will be removed; use"


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser(argv).parse_args(argv)


def xenmca(*argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xenmca.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != TOKEN_FILE_ENV},
        **kwargs,
    )


def test_version_is_the_installed_package_version() -> None:
    done = xenmca("--version")
    assert (done.returncode, done.stdout) == (0, f"xenmca {version('xenmca')}\n")


# -- one flag per kind of target; the old spellings warn once -----------------------------


def test_new_target_spellings_parse_without_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse(["status", "--pcpu", "h:1"]).pcpu == PcpuAddress("h:1")
    assert parse(["status", "--pcpu", "3=h:1"]).pcpu == PcpuAddress("h:1", 3)
    assert parse(["inject", "--pcpu", "h:1", "--type", "cmc"]).pcpu == PcpuAddress("h:1")
    served = parse(["serve", "xen", "--pcpu", "0=h:1", "--pcpu", "1=h:2"])
    assert served.pcpu == [PcpuAddress("h:1", 0), PcpuAddress("h:2", 1)]
    assert parse(["replay", "d.jsonl", "--pcpu", "h:1"]).pcpu == [PcpuAddress("h:1")]
    assert target_of(parse(["fault", "list", "--xen", "h:1"]), "fault list") == ("h:1", None)
    assert target_of(parse(["fault", "add", "--pcpu", "2=h:1", "--method", "M", "--action",
                            "fail"]), "fault add") == ("h:1", 2)  # fmt: skip
    assert parse(["bench", "--json", "--quick"]).json is True
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("argv", "attribute", "value", "use"),
    [
        (["status", "--pcpu-addr", "h:1"], "pcpu", PcpuAddress("h:1"), "--pcpu HOST:PORT"),
        (
            ["inject", "--pcpu-addr", "h:1", "--type", "cmc"],
            "pcpu",
            PcpuAddress("h:1"),
            "--pcpu HOST:PORT",
        ),
        (
            ["serve", "xen", "--pcpu", "0=h:1", "--pcpu-addr", "1=h:2"],
            "pcpu",
            [PcpuAddress("h:1", 0), PcpuAddress("h:2", 1)],
            "--pcpu N=HOST:PORT",
        ),
        (
            ["replay", "d.jsonl", "--pcpu-addr", "0=h:1"],
            "pcpu",
            [PcpuAddress("h:1", 0)],
            "--pcpu N=HOST:PORT",
        ),
        (["bench", "--json", "b.json"], "json_out", Path("b.json"), "--json-out FILE"),
        (["hazards", "--json", "m.json"], "json_out", Path("m.json"), "--json-out FILE"),
        (["compare-policies", "--json=c.json"], "json_out", Path("c.json"), "--json-out FILE"),
    ],
)
def test_old_spellings_still_work_with_one_warning_line(
    argv: list[str], attribute: str, value: object, use: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse(argv)
    assert getattr(args, attribute) == value
    if attribute == "json_out":
        assert args.json is False  # the old --json FILE wrote a file and printed the table
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and WARNING in err and use in err, err


def test_fault_target_and_pcpu_number_still_narrow_a_rule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["fault", "add", "--target", "h:1", "--pcpu", "3", "--method", "M", "--action", "fail"]
    assert target_of(parse(argv), "fault add") == ("h:1", 3)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--target" in err and "--xen HOST:PORT" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--json", "a.json", "--json-out", "b.json"], "both name a file"),
        (["bench", "--json-out", "b.json", "--json", "a.json"], "both name a file"),
        (["status", "--pcpu", "h:1", "--xen", "h:2"], "not allowed with"),
        (["status", "--pcpu", "x=h:1"], "is not 0..65535"),
        (["serve", "xen", "--pcpu", "h:1"], "expected N=HOST:PORT"),
        (["replay", "d", "--pcpu", "3"], "--files-pcpu N"),
        (["fault", "list", "--pcpu", "3"], "expected HOST:PORT or N=HOST:PORT"),
        (["fault", "list", "--xen", "h:1", "--pcpu", "h:2"], "name one target"),
        (["inject", "--type", "cmc"], "--pcpu is required"),
    ],
)
def test_bad_target_flags_are_one_line_and_exit_2(argv: list[str], message: str) -> None:
    done = xenmca(*argv)
    assert done.returncode == exit_status.USAGE, done
    assert done.stderr.strip().splitlines()[-1].count("error") == 1 and message in done.stderr


# -- exit statuses ------------------------------------------------------------------------


def test_run_and_demo_statuses() -> None:
    assert [run_exit_status(v) for v in (True, False, "unknown")] == [0, 1, 3]


def test_run_and_demo_exit_3_when_the_testbed_does_not_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from xenmca.testbed.run.runner import ScenarioRun

    async def refuse(self: ScenarioRun) -> dict[str, Any]:
        raise ProcessStartError("xen exited with status 1; see xen.log")

    monkeypatch.setattr(ScenarioRun, "execute", refuse)
    for argv in (["run", "cmc-storm"], ["demo"]):
        assert main([*argv, "--out", str(tmp_path), "--no-progress"]) == exit_status.NOT_RUN
        assert "testbed did not start" in capsys.readouterr().err


def test_compare_policies_exits_3_when_the_testbed_does_not_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from xenmca.testbed.compare import command as compare_command

    async def refuse(*_: object) -> list[dict[str, Any]]:
        raise ProcessStartError("no free ports")

    monkeypatch.setattr(compare_command, "run_all", refuse)
    assert main(["compare-policies", "--out", str(tmp_path)]) == exit_status.NOT_RUN


def test_bench_exits_3_when_a_section_could_not_run_and_json_goes_to_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from xenmca.testbed.bench import command as bench_command

    result = {"machine": {}, "rows": [], "duration_s": 0.1, "sections": {"scale": {"error": "x"}}}

    async def fake_bench(*_: object, **__: object) -> dict[str, Any]:
        return result

    monkeypatch.setattr(bench_command, "run_bench", fake_bench)
    out = tmp_path / "bench.json"
    status = main(["bench", "--only", "scale", "--json", "--json-out", str(out)])
    assert status == exit_status.NOT_RUN
    assert json.loads(capsys.readouterr().out) == result == json.loads(out.read_text())


def _cell(outcome: str, valid: object) -> Cell:
    return Cell("hazard-x", "shipped", "p", outcome, [], None, valid, 1.0, "d")


def test_hazards_statuses() -> None:
    status = hazards_command.matrix_status
    assert status([_cell("caught", False), _cell("held", True)]) == exit_status.OK
    assert status([_cell("missed", False), _cell("held", True)]) == exit_status.FAILED
    assert status([_cell("broken", False)]) == exit_status.FAILED
    assert status([_cell("broken", "unknown"), _cell("missed", False)]) == exit_status.NOT_RUN
    assert status([_cell("error", "unknown"), _cell("caught", False)]) == exit_status.NOT_RUN


def test_rpc_errors_exit_2_when_refused_and_3_when_the_call_could_not_be_made() -> None:
    def error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
        return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "d")

    for code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED):
        assert rpc_exit_status(error(code)) == exit_status.USAGE
    for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        assert rpc_exit_status(error(code)) == exit_status.NOT_RUN


def test_an_unexpected_error_is_its_traceback_and_exit_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from xenmca.ops import decode

    def explode(args: argparse.Namespace) -> int:
        raise RuntimeError("nobody saw this coming")

    monkeypatch.setattr(decode, "run", explode)
    assert main(["decode", "-"]) == exit_status.NOT_RUN
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "RuntimeError: nobody saw this coming" in err


def test_a_server_out_of_reach_exits_3() -> None:
    for argv in (["status", "--xen", "127.0.0.1:1"], ["fault", "list", "--pcpu", "127.0.0.1:1"]):
        done = xenmca(*argv)
        assert done.returncode == exit_status.NOT_RUN, done
        assert "UNAVAILABLE" in done.stderr and done.stderr.count("\n") == 1


# -- --json: snake_case, complete ---------------------------------------------------------


def test_message_json_is_snake_case_with_every_field() -> None:
    state = hv_pb2.DescribeHypervisorResponse(vcpu0_pcpu=0, dom0_attached=False)
    printed = message_json(state)
    assert printed["vcpu0_pcpu"] == 0 and printed["dom0_attached"] is False
    assert printed["pcpus"] == [] and "vcpu0Pcpu" not in printed


@dataclass
class Pcpu:
    host: PcpuHost
    address: str
    auth: tuple[str, ...]


@pytest.fixture
async def pcpu(tmp_path: Path) -> AsyncIterator[Pcpu]:
    tokens = TokenBook.generate(OPERATOR, XEN)
    token_file = tmp_path / "tokens.json"
    tokens.save(token_file)
    host = PcpuHost([0], token_book=tokens)
    await host.start()
    try:
        yield Pcpu(host, host.addresses[0], ("--token-file", str(token_file)))
    finally:
        await host.stop(grace=None)


async def run_async(*argv: str, stdout: int = subprocess.PIPE) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "xenmca.cli",
        *argv,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != TOKEN_FILE_ENV},
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, (out or b"").decode(), err.decode()


async def test_status_and_inject_json_are_snake_case_and_complete(pcpu: Pcpu) -> None:
    code, out, err = await run_async("status", "--pcpu", pcpu.address, "--json", *pcpu.auth)
    assert code == 0, err
    state = json.loads(out)
    assert state["pcpu"] == 0 and state["next_record_id"] == 1  # zeros printed, as numbers
    assert {t["type"] for t in state["types"]} >= {"RECORD_TYPE_CMC", "RECORD_TYPE_CPE"}
    assert all(t["pending"] == 0 and t["masked"] is False for t in state["types"])
    code, out, err = await run_async(
        "inject", "--pcpu", f"0={pcpu.address}", "--type", "cmc", "--count", "2", "--json",
        *pcpu.auth,
    )  # fmt: skip
    assert code == 0, err
    reply = json.loads(out)
    assert (reply["accepted"], reply["stored"], reply["overflowed"]) == (2, 2, 0)
    assert (reply["first_record_id"], reply["last_record_id"], reply["injection_id"]) == (1, 2, 0)
    code, _, err = await run_async("status", "--pcpu", f"1={pcpu.address}", *pcpu.auth)
    assert code == exit_status.USAGE and "that address serves pCPU 0" in err


async def test_a_closed_stdout_ends_the_command_quietly(pcpu: Pcpu) -> None:
    """`xenmca status --json | head`: the reader is gone before the command writes."""
    read, write = os.pipe()
    os.close(read)
    try:
        code, _, err = await run_async(
            "status", "--pcpu", pcpu.address, "--json", *pcpu.auth, stdout=write
        )
    finally:
        os.close(write)
    assert (code, err) == (exit_status.BROKEN_PIPE, "")


def test_a_closed_stdout_after_head_ends_quietly_in_a_shell() -> None:
    script = f"{sys.executable} -m xenmca.cli completion bash | head -1"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True)
    assert done.stdout.startswith("#") and done.stderr == ""
    assert done.returncode in (0, exit_status.BROKEN_PIPE)


# -- shell completion ---------------------------------------------------------------------


def test_completion_scripts_name_every_command() -> None:
    bash, zsh = xenmca("completion", "bash"), xenmca("completion", "zsh")
    assert bash.returncode == zsh.returncode == 0
    assert zsh.stdout.startswith("#compdef xenmca")
    for command in ("serve", "demo", "compare-policies", "replay", "completion"):
        assert command in bash.stdout and command in zsh.stdout
    assert "complete -o bashdefault -F _shtab_xenmca xenmca" in bash.stdout


def complete(script: str, *words: str) -> list[str]:
    """What bash offers for the last word of `xenmca WORDS...`."""
    line = ("xenmca", *words)
    program = (
        f'source "$1"; COMP_WORDS=({" ".join(line)}); COMP_CWORD={len(words)}; '
        f'COMP_LINE="{" ".join(line)}"; COMP_POINT=${{#COMP_LINE}}; '
        f'_shtab_xenmca xenmca "{line[-1]}" "{line[-2]}"; '
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(
        ["bash", "-c", program, "bash", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completes_commands_and_new_flags_only(tmp_path: Path) -> None:
    script = tmp_path / "xenmca.bash"
    script.write_text(xenmca("completion", "bash").stdout)
    assert complete(str(script), "sta") == ["status"]
    assert complete(str(script), "status", "--p") == ["--pcpu"]  # not the old --pcpu-addr
    assert complete(str(script), "serve", "x") == ["xen"]
    assert complete(str(script), "completion", "z") == ["zsh"]
