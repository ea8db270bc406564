"""`xenmca up --agents` as a real process for the tests that drive it from outside
(tests/test_target*.py), and `xenmca` run as a command."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def agents_up(up_dir: Path, *argv: str, within: float = 60) -> Iterator[Path]:
    """`xenmca up --agents ARGV --dir up_dir` until the block ends; yields its target.json."""
    up = subprocess.Popen(
        [sys.executable, "-m", "xenmca.cli", "up", "--agents", *argv, "--dir", str(up_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        target = up_dir / "target.json"
        deadline = time.monotonic() + within
        while not target.exists():
            assert up.poll() is None, up.stderr.read() if up.stderr else ""
            assert time.monotonic() < deadline, "xenmca up --agents did not come up"
            time.sleep(0.1)
        yield target
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)


def xenmca(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The `xenmca` command, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "xenmca.cli", *argv], capture_output=True, text=True, timeout=timeout
    )
