"""A client's command line as a child process: the adapters of adapters.yaml.

Each client runs from the repository root in its own process group, without
$XENMCA_TOKEN_FILE (every case names its credentials). Its output is read line
by line as it comes, and every line wakes the testbed's ``Changes``, so a case
can wait on "dom0 has logged 7 records" the same way it waits on testbed events.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CLIENTS_ENV = "XENMCA_CLIENTS"
"""Comma list of languages that must run: a missing build is then a failure, not a skip."""


def required_languages() -> set[str]:
    return {name.strip() for name in os.environ.get(CLIENTS_ENV, "").split(",") if name.strip()}


@dataclass(frozen=True)
class Adapter:
    """One language's client: how to run it, its program name, how it is built."""

    name: str
    argv: tuple[str, ...]
    prog: str
    build: str
    requires: tuple[str, ...]

    def command(self) -> list[str]:
        """argv to run from the root (a first word without "/" stays a PATH lookup)."""
        first, *rest = self.argv
        return [str(REPO / first) if "/" in first else first, *rest]

    def missing(self) -> list[str]:
        """What is not there yet: required files, or the program not on PATH."""
        gone = [path for path in self.requires if not (REPO / path).exists()]
        first = self.argv[0]
        if "/" not in first and shutil.which(first) is None:
            gone.append(f"{first} (not on PATH)")
        elif "/" in first and (REPO / first).exists() and not os.access(REPO / first, os.X_OK):
            gone.append(f"{first} (not executable)")
        return sorted(set(gone))

    def require(self) -> None:
        """Skip when the client is not built; fail instead when XENMCA_CLIENTS names it."""
        gone = self.missing()
        if not gone:
            return
        message = (
            f"{self.name} client not built (missing {', '.join(gone)}): "
            f"run `{self.build}` from the repository root"
        )
        if self.name in required_languages():
            pytest.fail(f"{CLIENTS_ENV} names {self.name}, but the {message}", pytrace=False)
        pytest.skip(message)


ADAPTERS_ENV = "XENMCA_CLIENTS_ADAPTERS"
"""Another adapters file to use instead of adapters.yaml (to try a client before adding it)."""


def load_adapters(path: Path | None = None) -> dict[str, Adapter]:
    chosen = path or Path(os.environ.get(ADAPTERS_ENV) or HERE / "adapters.yaml")
    data = yaml.safe_load(chosen.read_text())
    return {
        name: Adapter(
            name=name,
            argv=tuple(entry["argv"]),
            prog=entry["prog"],
            build=entry["build"],
            requires=tuple(entry.get("requires", ())),
        )
        for name, entry in data["adapters"].items()
    }


def load_cases(path: Path = HERE / "conformance.yaml") -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(path.read_text())
    cases = {case["id"]: case for case in data["cases"]}
    assert len(cases) == len(data["cases"]), "case ids are unique"
    return cases


def client_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "XENMCA_TOKEN_FILE"}


@dataclass
class Finished:
    """A client run that ended: its exit status (negative: killed by that signal) and output."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()

    def describe(self) -> str:
        return f"exit {self.code}; stdout {self.out[-2000:]!r}; stderr {self.err[-2000:]!r}"


@dataclass
class Running:
    """A client still running (dom0): its output so far, line by line."""

    process: asyncio.subprocess.Process
    argv: list[str]
    out_lines: list[str] = field(default_factory=list)
    err_lines: list[str] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def describe(self) -> str:
        return (
            f"{' '.join(self.argv[-12:])}: returncode {self.process.returncode}; "
            f"stdout {len(self.out_lines)} lines; stderr {self.err_lines[-8:]!r}"
        )

    def signal_group(self, signum: int) -> None:
        """Send signum to the client's process group, as a terminal's Ctrl-C does."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    async def wait(self, within: float) -> Finished:
        """Its exit, within the deadline (else it is killed and the case fails)."""
        try:
            async with asyncio.timeout(within):
                await self.process.wait()
        except TimeoutError:
            await self.kill()
            raise AssertionError(
                f"the client did not exit within {within} s: {self.describe()}"
            ) from None
        await asyncio.gather(*self.readers)
        code = self.process.returncode
        assert code is not None
        return Finished(
            code,
            "".join(f"{line}\n" for line in self.out_lines),
            "".join(f"{line}\n" for line in self.err_lines),
        )

    async def stop(self, signum: int = signal.SIGINT, within: float = 15.0) -> Finished:
        self.signal_group(signum)
        return await self.wait(within)

    async def kill(self) -> None:
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await self.process.wait()
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


class ClientCli:
    """Runs one adapter's command line; remembers what it started, to kill it at the end."""

    def __init__(self, adapter: Adapter, on_output: Callable[[], None] | None = None) -> None:
        self.adapter = adapter
        self.on_output = on_output or (lambda: None)
        self.started: list[Running] = []

    async def start(self, *args: str) -> Running:
        argv = [*self.adapter.command(), *args]
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=REPO,
            env=client_env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        running = Running(process, argv)
        assert process.stdout is not None and process.stderr is not None
        running.readers = [
            asyncio.create_task(self._read(process.stdout, running.out_lines)),
            asyncio.create_task(self._read(process.stderr, running.err_lines)),
        ]
        self.started.append(running)
        return running

    async def _read(self, stream: asyncio.StreamReader, lines: list[str]) -> None:
        while raw := await stream.readline():
            lines.append(raw.decode(errors="replace").rstrip("\n"))
            self.on_output()

    async def run(self, *args: str, within: float = 30.0) -> Finished:
        """Run to completion within the deadline."""
        return await (await self.start(*args)).wait(within)

    async def close(self) -> None:
        for running in self.started:
            await running.kill()

    # -- patterns of conformance.yaml --------------------------------------------------------

    def pattern(self, text: str, xen: str = "") -> str:
        """A conformance.yaml pattern with {prog} and {xen} filled in (both escaped)."""
        return text.replace("{prog}", re.escape(self.adapter.prog)).replace("{xen}", re.escape(xen))
