"""The shipped Xen/ia64 hazards: each caught under its shipped policy, each held under xenmca's.

Real processes: `xenmca hazards` runs every hazard scenario under the shipped
policy (plain SAL), under xenmca on extended firmware and under xenmca on
plain SAL; then single safeguards of the default are removed one at a time
(`xenmca run --policy-option`) and the checker that guards them must fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from xenmca.testbed.hazards.matrix import HAZARDS, SHIPPED, VARIANTS, hazard, judge
from xenmca.testbed.scenario.loader import builtin_names, load_builtin

pytestmark = pytest.mark.slow


def xenmca(*argv: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xenmca.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_every_hazard_has_a_builtin_scenario_without_a_shipped_policy() -> None:
    names = builtin_names()
    for item in HAZARDS:
        assert item.name in names
        scenario = load_builtin(item.name)
        # The files run xenmca's design; the shipped policy is applied by `xenmca hazards`.
        assert (scenario.policy.xen, scenario.policy.dom0, scenario.sal) == (
            "xenmca",
            "xenmca",
            "extended",
        )


def test_matrix_shipped_caught_and_default_held(tmp_path: Path) -> None:
    out, matrix_file = tmp_path / "hazards", tmp_path / "matrix.json"
    done = xenmca("hazards", "--out", str(out), "--json-out", str(matrix_file), "--no-progress")
    matrix = json.loads(matrix_file.read_text())
    summary = [
        (h["name"], r["variant"], r["outcome"], r["failing_checks"])
        for h in matrix["hazards"]
        for r in h["runs"]
    ]
    assert done.returncode == 0, (summary, done.stderr[-3000:])
    assert matrix["ok"] is True
    assert [h["name"] for h in matrix["hazards"]] == [h.name for h in HAZARDS]
    for entry in matrix["hazards"]:
        item = hazard(entry["name"])
        runs = {r["variant"]: r for r in entry["runs"]}
        assert set(runs) == set(VARIANTS)
        shipped = runs[SHIPPED]
        assert shipped["outcome"] == "caught", entry["name"]
        assert item.check in shipped["failing_checks"]
        assert shipped["first_record"], entry["name"]  # the checker names what it caught
        results = json.loads((Path(shipped["results_dir"]) / "results.json").read_text())
        assert judge(item, SHIPPED, results)[0] == "caught"
        for variant in VARIANTS[1:]:
            assert runs[variant]["outcome"] == "held", (entry["name"], variant, runs[variant])
            assert runs[variant]["valid"] is True


@pytest.mark.parametrize(
    ("name", "options", "check"),
    [
        ("hazard-starvation", ["after_clear=head"], "fairness"),
        ("hazard-clear-unread", ["clear_target=queue-head"], "cleared_before_logged"),
        ("hazard-failed-get", ["get_failure=drop", "ipi=single"], "stranded"),
        ("hazard-global-storm", ["storm_scope=global"], "isolation"),
        ("hazard-coalesced-virq", ["delivery=virq-bit"], "stranded"),
    ],
    ids=["tail-requeue", "clear-by-id", "keep-failed-entry", "per-line-storms", "tracked-virq"],
)
def test_removing_one_safeguard_of_the_default_is_caught(
    name: str, options: list[str], check: str, tmp_path: Path
) -> None:
    argv = ["run", name, "--out", str(tmp_path), "--json", "--no-progress"]
    for option in options:
        argv += ["--policy-option", option]
    done = xenmca(*argv, timeout=300)
    results = json.loads((tmp_path / "results.json").read_text())
    assert done.returncode == 1, done.stderr[-2000:]
    assert results["valid"] is False
    failing = {c["name"]: c for c in results["checks"] if c["status"] == "fail"}
    assert check in failing, sorted(failing)
    assert failing[check]["records"], failing[check]
    assert results["policy"]["xen"] == "xenmca"
    assert all(results["policy"]["options"][o.split("=")[0]] == o.split("=")[1] for o in options)


def test_hazards_command_line_errors() -> None:
    bad = xenmca("hazards", "--only", "no-such-thing")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "unknown hazard" in bad.stderr
    bad = xenmca("hazards", "--variants", "sometimes")
    assert bad.returncode == 2 and "unknown variant" in bad.stderr
    bad = xenmca("run", "hazard-starvation", "--policy-option", "after_clear=sideways")
    assert bad.returncode == 2 and "after_clear" in bad.stderr
