"""The supervised child process: its states and the verbs that move it between them.

    STOPPED --start--> RUNNING --pause--> PAUSED --resume--> RUNNING
    RUNNING/PAUSED --stop--> STOPPED       (SIGTERM, SIGKILL after the grace period)
    RUNNING/PAUSED --kill--> EXITED        (SIGKILL: a crash, nothing cleaned up)
    RUNNING/PAUSED --ends by itself--> EXITED
    EXITED --start--> RUNNING

Verbs run one at a time (a lock); one that does not apply raises a
FAILED_PRECONDITION RequestError and changes nothing. Every run uses the same
command line (and so the same state directory and events file).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from xenmca.rpc.errors import RequestError
from xenmca.rpc.events import EventLog
from xenmca.rpc.lifecycle import DIE_WITH_PARENT_ENV

DEFAULT_GRACE = 5.0
MAX_GRACE = 300.0
SIGNAL_SETTLE_S = 2.0
"""How long pause and resume wait for /proc to show the process stopped or running."""


class ChildState(enum.Enum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    EXITED = "exited"

    @property
    def alive(self) -> bool:
        return self in (ChildState.RUNNING, ChildState.PAUSED)


@dataclass(frozen=True)
class ChildExit:
    """How one run ended: exit code (0 when a signal ended it) or signal, and which run."""

    exit_code: int
    signal: int
    run: int

    @classmethod
    def from_returncode(cls, returncode: int, run: int) -> ChildExit:
        # asyncio reports "killed by signal N" as returncode -N.
        if returncode < 0:
            return cls(0, -returncode, run)
        return cls(returncode, 0, run)


@dataclass(frozen=True)
class ChildSpec:
    """What the child runs: its command line, as executed, and what the agent reads of it."""

    argv: tuple[str, ...]
    state_dir: str | None = None
    events_file: Path | None = None


def not_applicable(reason: str, message: str, state: ChildState) -> RequestError:
    """The FAILED_PRECONDITION of a verb that does not apply to the child's state."""
    return RequestError(
        grpc.StatusCode.FAILED_PRECONDITION, reason, message, {"state": state.value}
    )


def proc_state(pid: int) -> str | None:
    """The one-letter state of /proc/<pid>/stat ('R', 'S', 'T', 'Z', ...); None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[0] if fields else None


class Child:
    """One supervised child process and its history (starts, last exit)."""

    def __init__(
        self,
        spec: ChildSpec,
        events: EventLog | None = None,
        default_grace: float = DEFAULT_GRACE,
    ) -> None:
        self.spec = spec
        self.events = events
        self.default_grace = default_grace
        self.state = ChildState.STOPPED
        self.starts = 0
        self.last_exit: ChildExit | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._ends_as = ChildState.EXITED
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self.state.alive else None

    def _emit(self, kind: str, **fields: object) -> None:
        if self.events is not None:
            self.events.emit(kind, **fields)

    async def start(self) -> None:
        """Start a stopped or exited child; CHILD_RUNNING when it is alive."""
        async with self._lock:
            if self.state.alive:
                raise not_applicable(
                    "CHILD_RUNNING", f"the child is already {self.state.value}", self.state
                )
            await self._spawn()

    async def stop(self, grace: float | None = None) -> None:
        """SIGTERM, SIGKILL after grace; CHILD_NOT_RUNNING when there is no process."""
        async with self._lock:
            self._require_alive("stop")
            await self._terminate(self.default_grace if grace is None else grace)

    async def kill(self) -> None:
        """SIGKILL, as a crash; CHILD_NOT_RUNNING when there is no process."""
        async with self._lock:
            self._require_alive("kill")
            await self._kill()

    async def restart(self, kill: bool = False, grace: float | None = None) -> None:
        """Stop (or kill) the process if there is one, wait until it is gone, start again."""
        async with self._lock:
            if self.state.alive:
                if kill:
                    await self._kill()
                else:
                    await self._terminate(self.default_grace if grace is None else grace)
            await self._spawn()

    async def pause(self) -> None:
        """SIGSTOP; returns once /proc shows the process stopped."""
        async with self._lock:
            if self.state is ChildState.PAUSED:
                raise not_applicable("CHILD_PAUSED", "the child is already paused", self.state)
            self._require_alive("pause")
            pid = self._signal(signal.SIGSTOP)
            self.state = ChildState.PAUSED
            await self._settle(pid, lambda letter: letter in ("T", "t"))
            self._emit("child_paused", pid=pid, run=self.starts)

    async def resume(self) -> None:
        """SIGCONT; returns once /proc no longer shows the process stopped."""
        async with self._lock:
            if self.state is ChildState.RUNNING:
                raise not_applicable("CHILD_NOT_PAUSED", "the child is not paused", self.state)
            self._require_alive("resume")
            pid = self._signal(signal.SIGCONT)
            self.state = ChildState.RUNNING
            await self._settle(pid, lambda letter: letter not in ("T", "t"))
            self._emit("child_resumed", pid=pid, run=self.starts)

    async def close(self, grace: float | None = None) -> None:
        """Stop the child if it is alive (the agent is stopping)."""
        async with self._lock:
            if self.state.alive:
                await self._terminate(self.default_grace if grace is None else grace)

    def _require_alive(self, verb: str) -> None:
        if not self.state.alive:
            message = f"cannot {verb} the child: it is {self.state.value}"
            raise not_applicable("CHILD_NOT_RUNNING", message, self.state)

    def _signal(self, sig: signal.Signals) -> int:
        assert self._process is not None
        # The process may have ended a moment ago without being reaped yet: a signal to
        # that zombie does nothing, and the reaper then marks the child EXITED.
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._process.pid, sig)
        return self._process.pid

    async def _settle(self, pid: int, done: Callable[[str], bool]) -> None:
        deadline = asyncio.get_running_loop().time() + SIGNAL_SETTLE_S
        while asyncio.get_running_loop().time() < deadline:
            letter = proc_state(pid)
            if letter is None or letter in ("Z", "X") or done(letter):
                return
            await asyncio.sleep(0.002)

    async def _spawn(self) -> None:
        env = dict(os.environ)
        env[DIE_WITH_PARENT_ENV] = str(os.getpid())
        try:
            # A session of its own: a Ctrl-C meant for the agent does not reach the child
            # directly; the agent stops it (SIGTERM) as it stops.
            process = await asyncio.create_subprocess_exec(
                *self.spec.argv, env=env, start_new_session=True
            )
        except OSError as exc:
            raise not_applicable(
                "CHILD_START_FAILED",
                f"cannot start {self.spec.argv[0]!r}: {exc.strerror or exc}",
                self.state,
            ) from exc
        self.starts += 1
        self._process = process
        self._ends_as = ChildState.EXITED
        self.state = ChildState.RUNNING
        self._reaper = asyncio.create_task(self._reap(process, self.starts))
        self._emit("child_started", pid=process.pid, run=self.starts, argv=list(self.spec.argv))

    async def _reap(self, process: asyncio.subprocess.Process, run: int) -> None:
        returncode = await process.wait()
        self.last_exit = ChildExit.from_returncode(returncode, run)
        self.state = self._ends_as
        self._emit(
            "child_exited",
            pid=process.pid,
            run=run,
            exit_code=self.last_exit.exit_code,
            signal=self.last_exit.signal,
            by_agent=self._ends_as is ChildState.STOPPED,
        )

    async def _wait_gone(self, limit: float | None) -> bool:
        """Wait until the reaper has seen the process end; False on timeout."""
        assert self._reaper is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._reaper), limit)
        except TimeoutError:
            return False
        return True

    async def _terminate(self, grace: float) -> None:
        self._ends_as = ChildState.STOPPED
        paused = self.state is ChildState.PAUSED
        pid = self._signal(signal.SIGTERM)
        if paused:
            # A stopped process keeps SIGTERM pending until it runs again.
            self._signal(signal.SIGCONT)
        self._emit("child_stopping", pid=pid, run=self.starts, grace_s=grace)
        if not await self._wait_gone(grace):
            self._signal(signal.SIGKILL)
            await self._wait_gone(None)

    async def _kill(self) -> None:
        self._ends_as = ChildState.EXITED
        pid = self._signal(signal.SIGKILL)
        self._emit("child_killed", pid=pid, run=self.starts)
        await self._wait_gone(None)
