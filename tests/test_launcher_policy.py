"""Policies reach the processes as flags (only when not default), and the drain knows when to stop.

The command lines are built by `LocalTestbed.plan()`, which starts nothing; the
drain runs against a real in-process pCPU host.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from xenmca.cli import main as cli_main
from xenmca.pcpu.firmware import Injection
from xenmca.pcpu.server import PcpuHost
from xenmca.record.v1 import record_pb2
from xenmca.rpc.channels import open_channel
from xenmca.rpc.identity import OPERATOR, TokenBook, call_metadata
from xenmca.testbed.infra.launcher import LocalTestbed
from xenmca.testbed.infra.launcher_args import (
    DOM0_POLICIES,
    check_policies,
    dom0_policy_args,
    pcpu_policy_args,
    xen_policy_args,
)
from xenmca.testbed.infra.spec import TestbedSpec
from xenmca.testbed.infra.spec import testbed_spec as spec_of
from xenmca.testbed.run import up_command
from xenmca.testbed.run.sampler import FirmwareReader
from xenmca.testbed.scenario.loader import parse_scenario_text
from xenmca.xen.policy import SAL_MODES, PolicyError

POLICY_FLAGS = ("--policy", "--policy-option", "--sal", "--salinfo-decode-delay")


def planned(spec: TestbedSpec) -> LocalTestbed:
    bed = LocalTestbed(spec)
    bed.plan()
    return bed


def argvs(bed: LocalTestbed) -> dict[str, list[str]]:
    return {process.name: process.argv for process in bed.processes}


def contains(argv: list[str], part: list[str]) -> bool:
    return any(argv[i : i + len(part)] == part for i in range(len(argv) - len(part) + 1))


# -- command lines ------------------------------------------------------------------------


def test_a_default_spec_adds_no_policy_flag(tmp_path: Path) -> None:
    spec = TestbedSpec(workdir=tmp_path, pcpus=4, pcpus_per_host=2)
    assert xen_policy_args(spec) == pcpu_policy_args(spec) == dom0_policy_args(spec) == []
    lines = argvs(planned(spec))
    assert sorted(lines) == ["dom0", "pcpu-host0", "pcpu-host1", "xen"]
    for name, argv in lines.items():
        assert not set(argv) & set(POLICY_FLAGS), name


def test_policies_become_exactly_these_flags(tmp_path: Path) -> None:
    spec = TestbedSpec(
        workdir=tmp_path,
        pcpus=4,
        pcpus_per_host=2,
        xen_policy="xen-ia64-2009",
        xen_policy_options={"after_clear": "tail-if-more", "ipi": "retry"},
        dom0_policy="linux-salinfo",
        sal_mode="plain",
        salinfo_decode_delay=0.25,
    )
    xen = [
        "--policy",
        "xen-ia64-2009",
        "--policy-option",
        "after_clear=tail-if-more",
        "--policy-option",
        "ipi=retry",
        "--sal",
        "plain",
    ]
    dom0 = ["--policy", "linux-salinfo", "--salinfo-decode-delay", "0.25"]
    assert xen_policy_args(spec) == xen
    assert pcpu_policy_args(spec) == ["--sal", "plain"]
    assert dom0_policy_args(spec) == dom0
    lines = argvs(planned(spec))
    assert lines["xen"][:2] == ["serve", "xen"] and contains(lines["xen"], xen)
    assert lines["dom0"][0] == "dom0" and contains(lines["dom0"], dom0)
    for host in ("pcpu-host0", "pcpu-host1"):
        assert lines[host][:2] == ["serve", "pcpu"]
        assert contains(lines[host], ["--sal", "plain"])
        assert not {"--policy", "--policy-option", "--salinfo-decode-delay"} & set(lines[host])
    # Each flag once, nowhere else.
    assert lines["xen"].count("--sal") == 1 and "--salinfo-decode-delay" not in lines["xen"]
    assert "--sal" not in lines["dom0"] and "--policy-option" not in lines["dom0"]


@pytest.mark.parametrize(
    ("changes", "xen", "pcpu", "dom0"),
    [
        ({"xen_policy": "xen-ia64-2006"}, ["--policy", "xen-ia64-2006"], [], []),
        (
            {"xen_policy_options": {"after_clear": "head"}},
            ["--policy-option", "after_clear=head"],
            [],
            [],
        ),
        ({"sal_mode": "plain"}, ["--sal", "plain"], ["--sal", "plain"], []),
        ({"dom0_policy": "linux-salinfo"}, [], [], ["--policy", "linux-salinfo"]),
        (
            {"dom0_policy": "linux-salinfo", "salinfo_decode_delay": 0.0},
            [],
            [],
            ["--policy", "linux-salinfo", "--salinfo-decode-delay", "0.0"],
        ),
        ({"sal_mode": "extended", "xen_policy": "xenmca", "dom0_policy": "xenmca"}, [], [], []),
    ],
)
def test_each_setting_adds_only_its_own_flags(
    tmp_path: Path, changes: dict[str, object], xen: list[str], pcpu: list[str], dom0: list[str]
) -> None:
    spec = TestbedSpec(workdir=tmp_path, **changes)  # type: ignore[arg-type]
    assert (xen_policy_args(spec), pcpu_policy_args(spec), dom0_policy_args(spec)) == (
        xen,
        pcpu,
        dom0,
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"xen_policy": "xen-2000"}, "unknown policy 'xen-2000'"),
        ({"xen_policy_options": {"after_clear": "sideways"}}, "after_clear: unknown choice"),
        ({"xen_policy_options": {"colour": "red"}}, "unknown policy knob 'colour'"),
        ({"dom0_policy": "windows"}, "unknown dom0 policy 'windows'"),
        ({"sal_mode": "fancy"}, "unknown SAL mode 'fancy'"),
        (
            {"dom0_policy": "linux-salinfo", "salinfo_decode_delay": -1.0},
            "salinfo decode delay must be >= 0",
        ),
        (
            {"salinfo_decode_delay": 0.5},
            "a salinfo decode delay applies only to dom0 policy linux-salinfo "
            r"\(dom0 policy is xenmca\)",
        ),
    ],
)
def test_an_unknown_policy_is_refused_before_anything_starts(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    spec = TestbedSpec(workdir=tmp_path / "bed", **changes)  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match=message):
        check_policies(spec)
    with pytest.raises(ValueError, match=message):
        LocalTestbed(spec)
    assert not (tmp_path / "bed").exists()


def test_the_known_dom0_policies_and_sal_modes() -> None:
    assert DOM0_POLICIES == ("xenmca", "linux-salinfo")
    assert SAL_MODES == ("extended", "plain")


SCENARIO = """
name: p
seed: 1
pcpus: 4
duration_s: 5
"""


def test_the_runner_fills_the_spec_from_the_scenario(tmp_path: Path) -> None:
    default = spec_of(parse_scenario_text(SCENARIO), tmp_path)
    assert (
        default.xen_policy,
        default.xen_policy_options,
        default.dom0_policy,
        default.sal_mode,
        default.salinfo_decode_delay,
    ) == ("xenmca", {}, "xenmca", "extended", None)
    scenario = parse_scenario_text(
        SCENARIO
        + "policy: {xen: xen-ia64-2006, dom0: linux-salinfo, options: {storm_scope: per-line}}\n"
        + "sal: plain\ndom0: {salinfo_decode_delay_s: 0.5}\n"
    )
    spec = spec_of(scenario, tmp_path)
    assert (
        spec.xen_policy,
        spec.xen_policy_options,
        spec.dom0_policy,
        spec.sal_mode,
        spec.salinfo_decode_delay,
    ) == ("xen-ia64-2006", {"storm_scope": "per-line"}, "linux-salinfo", "plain", 0.5)
    assert xen_policy_args(spec) == [
        "--policy",
        "xen-ia64-2006",
        "--policy-option",
        "storm_scope=per-line",
        "--sal",
        "plain",
    ]


# -- xenmca up ----------------------------------------------------------------------------


def up_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    up_command.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--policy", "xen-2000"],
            "--policy: unknown policy 'xen-2000' (known: xenmca, xen-ia64-2006, xen-ia64-2009)",
        ),
        (
            ["--policy-option", "after_clear"],
            "--policy-option: policy option 'after_clear' is not KNOB=CHOICE",
        ),
        (
            ["--policy-option", "ipi=retry", "--policy-option", "after_clear=sideways"],
            "--policy-option: after_clear: unknown choice 'sideways' "
            "(known: tail-if-more, head, free)",
        ),
        (
            ["--dom0-policy", "windows"],
            "--dom0-policy: unknown policy 'windows' (known: xenmca, linux-salinfo)",
        ),
        (["--sal", "fancy"], "--sal: unknown SAL mode 'fancy' (known: extended, plain)"),
    ],
)
def test_up_refuses_a_bad_policy_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert cli_main(["up", "--dir", str(tmp_path / "bed"), *argv]) == 2
    err = capsys.readouterr().err
    assert err == f"xenmca up: error: {expected}\n"
    assert not (tmp_path / "bed").exists()


def test_up_names_the_policy_it_runs(tmp_path: Path) -> None:
    args = up_args("--policy", "xen-ia64-2009", "--policy-option", "after-clear=free")
    assert args.policy_option == ["after-clear=free"]
    spec = TestbedSpec(
        workdir=tmp_path,
        xen_policy=args.policy,
        xen_policy_options={"after_clear": "free"},
        dom0_policy="linux-salinfo",
        sal_mode="plain",
    )
    assert (
        up_command.policy_line(spec)
        == "xen-ia64-2009+after_clear=free, dom0 linux-salinfo, SAL plain"
    )
    assert (
        up_command.policy_line(TestbedSpec(workdir=tmp_path)) == "xenmca, dom0 xenmca, SAL extended"
    )


# -- the drain ----------------------------------------------------------------------------


@dataclass
class Directory:
    """The pCPUs of an in-process host, as FirmwareReader needs them."""

    addresses: Mapping[int, str]
    token_book: TokenBook
    extra: dict[int, str] = field(default_factory=dict)

    @property
    def pcpu_addresses(self) -> Mapping[int, str]:
        return {**self.addresses, **self.extra}

    def channel(self, address: str) -> grpc.aio.Channel:
        return open_channel(address)

    def operator_metadata(self) -> tuple[tuple[str, str], ...]:
        return call_metadata(self.token_book.token_for(OPERATOR))


@dataclass
class Host:
    host: PcpuHost
    directory: Directory

    async def inject(self, pcpu: int, count: int) -> None:
        firmware = self.host.servers[pcpu].firmware
        await firmware.inject(
            Injection(record_pb2.RECORD_TYPE_CMC, record_pb2.SEVERITY_CORRECTED, count)
        )

    async def clear_oldest(self, pcpu: int) -> None:
        await self.host.servers[pcpu].firmware.clear(record_pb2.RECORD_TYPE_CMC, None)


@pytest.fixture(params=["extended", "plain"])
async def host(request: pytest.FixtureRequest) -> AsyncIterator[Host]:
    tokens = TokenBook.generate()
    pcpu_host = PcpuHost(range(2), token_book=tokens, capacity=100, sal_mode=request.param)
    await pcpu_host.start()
    try:
        yield Host(pcpu_host, Directory(pcpu_host.addresses, tokens))
    finally:
        await pcpu_host.stop()


async def test_a_record_nobody_clears_ends_the_drain_once_idle(host: Host) -> None:
    await host.inject(1, 3)
    reader = FirmwareReader(host.directory)
    try:
        ended = await reader.drain(30.0, idle_s=0.5, interval=0.05)
        assert (ended.how, ended.drained, ended.pending, ended.missing) == ("idle", False, 3, [])
        assert 0.5 <= ended.waited_s < 5.0
        final, missing = await reader.read(pending_ids_limit=1000)
        cmc = {c.pcpu: c for c in final if c.type == "CMC"}
        assert missing == [] and cmc[0].pending == 0 and cmc[1].pending == 3
        assert len(cmc[1].pending_ids) == 3 and cmc[1].pending_ids_complete
        assert list(cmc[1].pending_ids) == sorted(cmc[1].pending_ids)
        assert cmc[0].pending_ids == () and cmc[0].pending_ids_complete
        cut, _ = await reader.read(pending_ids_limit=2)
        short = next(c for c in cut if c.pcpu == 1 and c.type == "CMC")
        assert short.pending_ids == cmc[1].pending_ids[:2] and not short.pending_ids_complete
    finally:
        await reader.close()


async def test_clears_keep_the_drain_going_until_nothing_is_pending(host: Host) -> None:
    """Each clear is progress: idle_s counts from the last change, not from the start."""
    await host.inject(0, 4)

    async def clear_slowly() -> None:
        for _ in range(4):
            await asyncio.sleep(0.3)
            await host.clear_oldest(0)

    clearing = asyncio.create_task(clear_slowly())
    reader = FirmwareReader(host.directory)
    try:
        ended = await reader.drain(30.0, idle_s=0.6, interval=0.05)
        await clearing
        assert (ended.how, ended.drained, ended.pending) == ("drained", True, 0)
        assert ended.waited_s >= 1.0  # longer than idle_s: the clears kept it going
    finally:
        clearing.cancel()
        await reader.close()


async def test_without_an_idle_window_the_drain_waits_for_its_timeout(host: Host) -> None:
    await host.inject(0, 1)
    reader = FirmwareReader(host.directory)
    try:
        ended = await reader.drain(0.4, interval=0.05)
        assert (ended.how, ended.drained, ended.pending) == ("timeout", False, 1)
        assert 0.4 <= ended.waited_s < 3.0
    finally:
        await reader.close()


async def test_an_empty_store_is_drained_at_once(host: Host) -> None:
    reader = FirmwareReader(host.directory)
    try:
        ended = await reader.drain(10.0, idle_s=0.5)
        assert (ended.how, ended.drained, ended.pending) == ("drained", True, 0)
        assert ended.waited_s < 0.5
    finally:
        await reader.close()


async def test_a_pcpu_that_never_answers_is_not_drained(host: Host) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    host.directory.extra[2] = dead
    reader = FirmwareReader(host.directory)
    try:
        ended = await reader.drain(30.0, idle_s=0.3, interval=0.05)
        assert (ended.how, ended.drained, ended.pending, ended.missing) == ("idle", False, 0, [2])
    finally:
        await reader.close()


async def test_the_drain_waits_for_the_log_to_hold_every_cleared_record(host: Host) -> None:
    """A dom0 that clears before it logs (linux-salinfo) still holds records when nothing is
    pending: the drain waits for its log, and a log that never catches up ends it as idle."""
    await host.inject(0, 2)
    await host.clear_oldest(0)
    await host.clear_oldest(0)
    in_log = [1]
    reader = FirmwareReader(host.directory)
    try:
        catch_up = asyncio.get_running_loop().call_later(0.4, in_log.__setitem__, 0, 2)
        ended = await reader.drain(30.0, idle_s=1.0, interval=0.05, logged=lambda: in_log[0])
        catch_up.cancel()
        assert (ended.how, ended.drained, ended.pending, ended.cleared, ended.logged) == (
            "drained",
            True,
            0,
            2,
            2,
        )
        assert 0.4 <= ended.waited_s < 1.0
        in_log[0] = 1
        ended = await reader.drain(30.0, idle_s=0.3, interval=0.05, logged=lambda: in_log[0])
        # Nothing pending (drained), but the log lacks a cleared record: it ended idle.
        assert (ended.how, ended.drained, ended.logged) == ("idle", True, 1)
        ended = await reader.drain(30.0, idle_s=0.3, interval=0.05, logged=lambda: None)
        assert (ended.how, ended.drained, ended.logged) == ("drained", True, None)
    finally:
        await reader.close()
