"""Policies reach the processes as flags (only when not default), and `xenmca up` runs them.

The command lines are built by `LocalTestbed.plan()`, which starts nothing. The drain,
against a real in-process pCPU host, is in test_launcher_drain.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from xenmca.cli import main as cli_main
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
