"""The launcher leaves no process behind: on Ctrl-C of `xenmca run`, and when the launcher dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LONG = """
name: long
description: runs long enough to be interrupted
seed: 1
pcpus: 4
pcpus_per_host: 2
duration_s: 120
workload:
  streams:
    - {type: cmc, rate: 0.5, pcpus: all}
"""


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def wait_for(predicate, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)  # polling another process's files: nothing to await on
    return False


def start_run(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    scenario = tmp_path / "long.yaml"
    scenario.write_text(LONG)
    out = tmp_path / "out"
    with (tmp_path / "stderr.txt").open("wb") as stderr:  # the child keeps its own copy
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xenmca.cli",
                "run",
                str(scenario),
                "--out",
                str(out),
                "--no-progress",
            ],
            stdout=subprocess.DEVNULL,
            # A file, not a pipe: nothing reads a pipe here, and a launcher that filled one
            # would block on its next write; the file is shown when a run does not stop.
            stderr=stderr,
        )
    # Up when the coordinator has sampled once and dom0 has logged something.
    assert wait_for(
        lambda: (out / "events-runner.jsonl").exists() and len(processes_mentioning(str(out))) >= 4,
        60,
    ), "testbed did not start"
    return run, out


def test_ctrl_c_stops_every_component(tmp_path: Path) -> None:
    run, out = start_run(tmp_path)
    children = processes_mentioning(str(out))
    assert len(children) >= 4  # two pCPU hosts, the coordinator, dom0
    run.send_signal(signal.SIGINT)
    assert _wait(run, tmp_path, 60) == 130
    assert wait_for(lambda: not processes_mentioning(str(out)), 20), processes_mentioning(str(out))


def _wait(run: subprocess.Popen[bytes], tmp_path: Path, within: float) -> int:
    """The launcher's exit status, or a failure quoting its stderr's end if it does not exit."""
    try:
        return run.wait(timeout=within)
    except subprocess.TimeoutExpired:
        run.kill()
        tail = (tmp_path / "stderr.txt").read_text(errors="replace")[-3000:]
        pytest.fail(f"xenmca run did not stop within {within:g}s of Ctrl-C; its stderr:\n{tail}")


def test_children_die_with_a_killed_launcher(tmp_path: Path) -> None:
    run, out = start_run(tmp_path)
    run.kill()
    run.wait(timeout=10)
    assert wait_for(lambda: not processes_mentioning(str(out)), 20), processes_mentioning(str(out))
