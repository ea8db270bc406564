"""`--clock-skew`: what it runs (unshare in a time namespace, in place) and what it refuses.

The whole run on skewed hosts is tests/test_target_skew.py (root); here the command
prefix and the refusals, which need neither root nor processes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xenmca.rpc.usage import UsageError
from xenmca.testbed.infra.clock_skew import MAX_SKEW_S, check_clock_skew, time_namespace_prefix
from xenmca.testbed.infra.launcher import LocalTestbed
from xenmca.testbed.infra.spec import TestbedSpec


def test_the_prefix_skews_both_monotonic_clocks_and_execs_in_place() -> None:
    prefix = time_namespace_prefix(-42)
    assert prefix == ["unshare", "--time", "--monotonic", "-42", "--boottime", "-42"]
    assert "--fork" not in prefix  # the launched pid stays the program's (die-with-parent)


def spec(tmp_path: Path, **overrides: object) -> TestbedSpec:
    fields: dict[str, object] = {"workdir": tmp_path, "pcpus": 4, "pcpus_per_host": 2}
    return TestbedSpec(**(fields | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"clock_skew_s": {"dom0": 5}}, "clock skew needs agents"),
        ({"agents": True, "clock_skew_s": {"pcpu-host7": 5}}, "unknown host(s) pcpu-host7"),
        ({"agents": True, "clock_skew_s": {"xen": MAX_SKEW_S + 1}}, "is beyond"),
    ],
)
def test_refusals_name_the_problem(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    testbed_spec = spec(tmp_path, **overrides)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_clock_skew(testbed_spec, LocalTestbed(testbed_spec).host_names())


def test_the_hosts_are_the_pcpu_hosts_then_xen_and_dom0(tmp_path: Path) -> None:
    assert LocalTestbed(spec(tmp_path)).host_names() == ["pcpu-host0", "pcpu-host1", "xen", "dom0"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--clock-skew", "dom0"], "expected HOST=SECONDS"),
        (["--clock-skew", "dom0=1.5"], "expected HOST=SECONDS"),
        (["--clock-skew", "dom0=30"], "clock skew needs agents"),
    ],
)
def test_the_command_line_refuses_in_one_line_with_exit_2(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "xenmca.cli", "up", "--dir", str(tmp_path / "up"), *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert message in lines[-1]
    assert not (tmp_path / "up" / "tokens.json").exists()  # nothing started
