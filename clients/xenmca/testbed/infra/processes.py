"""Child processes of a local testbed: started, waited for, killed and restarted on demand.

Every child is a real `python -m xenmca.cli ...` process in its own session,
with its output in a log file. Each one is asked (by environment) to set
PR_SET_PDEATHSIG on itself, so a launcher killed with -9 leaves nothing behind;
the children are spawned without a preexec hook, because forking a process
that runs gRPC threads runs gRPC's fork handlers, which can abort the child.
An `exec_prefix` (e.g. ``ip netns exec NS``) runs the child through a program
that execs it in place, so the launcher is still the child's parent.

A component runs at most once: `start` refuses while its process is alive, and
a restart first waits until the old process has been reaped and its listening
ports (`ports` on `listen_host`, in the network namespace `netns_path` if
any) can be bound again, so the new instance never fails to bind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from xenmca.rpc.lifecycle import DIE_WITH_PARENT_ENV
from xenmca.testbed.infra.netns_gateway import _enter_namespace

# How long a restart waits for the old instance's ports, and for an exited one to be
# reaped, before it gives up (ProcessStartError) rather than start a second instance.
PORT_WAIT_S = 10.0
REAP_WAIT_S = 10.0


def child_env(env: dict[str, str]) -> dict[str, str]:
    """The child's environment: asks it to die with this process (see lifecycle)."""
    return {**os.environ, **env, DIE_WITH_PARENT_ENV: str(os.getpid())}


class ProcessStartError(RuntimeError):
    """A component that exited or did not become ready; the message names it and its log."""


class AlreadyRunning(ProcessStartError):
    """start() of a component whose process is alive: a second instance is never started."""


def _is_zombie(pid: int) -> bool:
    """True when pid has exited and waits to be reaped (or is gone already)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def ports_in_use(host: str, ports: tuple[int, ...], netns_path: str | None = None) -> list[int]:
    """The ports a server could not bind on host now (as gRPC binds: SO_REUSEADDR).

    With netns_path, probed from inside that network namespace; the caller runs
    this in a thread of its own, which the namespace change leaves unusable.
    """
    if netns_path is not None:
        _enter_namespace(netns_path)
    busy = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                busy.append(port)
    return busy


async def _ports_in_use_async(
    host: str, ports: tuple[int, ...], netns_path: str | None
) -> list[int]:
    if netns_path is None:
        return ports_in_use(host, ports)
    # A fresh thread, discarded after: setns() moves the calling thread for good.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xenmca-port-probe")
    try:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, ports_in_use, host, ports, netns_path)
    finally:
        executor.shutdown(wait=False)


@dataclass
class ManagedProcess:
    """One component: its command line, ready file and log; restartable with the same command."""

    name: str
    argv: list[str]
    log_path: Path
    ready_file: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    exec_prefix: list[str] = field(default_factory=list)
    # Where it listens (from the launcher's plan): none for dom0.
    listen_host: str = ""
    ports: tuple[int, ...] = ()
    netns_path: str | None = None  # the network namespace file its ports live in
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    # Seconds the last start waited for the previous instance to be reaped and its ports freed.
    last_start_wait_s: float = 0.0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, port_wait: float = PORT_WAIT_S) -> None:
        """Start the command; AlreadyRunning if its process is alive (never two instances).

        A restart first waits until the previous process is reaped and its ports are free.
        """
        began = time.monotonic()
        await self._reap_previous()
        await self.wait_ports_free(port_wait)
        self.last_start_wait_s = time.monotonic() - began
        if self.ready_file is not None:
            self.ready_file.unlink(missing_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # noqa: ASYNC230 - opened once per start
            self.process = await asyncio.create_subprocess_exec(
                *self.exec_prefix,
                sys.executable,
                "-m",
                "xenmca.cli",
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=child_env(self.env),
                start_new_session=True,
            )
        self.starts += 1

    async def _reap_previous(self) -> None:
        previous = self.process
        if previous is None or previous.returncode is not None:
            return
        if not _is_zombie(previous.pid):
            raise AlreadyRunning(
                f"{self.name} is already running (pid {previous.pid}); not starting another"
            )
        try:
            await asyncio.wait_for(previous.wait(), REAP_WAIT_S)
        except TimeoutError:
            raise ProcessStartError(
                f"{self.name}: pid {previous.pid} exited but was not reaped "
                f"within {REAP_WAIT_S:g}s; not starting another"
            ) from None

    async def wait_ports_free(self, within: float = PORT_WAIT_S) -> None:
        """Wait until every listening port can be bound; ProcessStartError after `within`."""
        if not self.ports:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        delay = 0.01
        while busy := await _ports_in_use_async(self.listen_host, self.ports, self.netns_path):
            if loop.time() > deadline:
                raise ProcessStartError(
                    f"{self.name}: ports {busy} on {self.listen_host} still in use "
                    f"after {within:g}s; not starting"
                )
            await asyncio.sleep(delay)
            delay = min(0.2, delay * 1.5)

    async def wait_ready(self, within: float = 60.0) -> Any:
        """Wait for the ready file (JSON) and return its content."""
        if self.ready_file is None:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        delay = 0.01
        while True:
            if self.process is not None and self.process.returncode is not None:
                raise ProcessStartError(
                    f"{self.name} exited with status {self.process.returncode}; see {self.log_path}"
                )
            if self.ready_file.exists():
                with contextlib.suppress(json.JSONDecodeError):
                    return json.loads(self.ready_file.read_text())
            if loop.time() > deadline:
                raise ProcessStartError(
                    f"{self.name} not ready after {within:g}s; see {self.log_path}"
                )
            await asyncio.sleep(delay)
            delay = min(0.2, delay * 1.5)

    def signal(self, signum: int) -> None:
        if self.running and self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signum)

    async def pause(self) -> None:
        """SIGSTOP (a fault's pause; a target's agent does the same for its child)."""
        self.signal(signal.SIGSTOP)

    async def resume(self) -> None:
        self.signal(signal.SIGCONT)

    async def kill(self) -> None:
        """kill -9, and reap."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            await self.process.wait()

    async def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after grace; returns the exit status."""
        if self.process is None:
            return None
        if self.running:
            self.signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
            self.signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                await self.kill()
        return self.process.returncode


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and its anonymous (private heap) part, in KiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            fields[key] = int(value.split()[0])
    return {"rss": fields.get("VmRSS", 0), "anon": fields.get("RssAnon", 0)}


def free_port_range(count: int, host: str = "127.0.0.1", start: int = 20000) -> int:
    """A base port such that base .. base+count-1 are all free right now on host."""
    base = start + (os.getpid() * 7919) % 20000
    for _ in range(200):
        sockets = []
        try:
            for offset in range(count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind((host, base + offset))
            return base
        except OSError:
            base = start + (base - start + count + 97) % 30000
        finally:
            for sock in sockets:
                sock.close()
    raise ProcessStartError(f"no {count} consecutive free ports on {host}")


async def wait_for_state(
    describe: Callable[[], Awaitable[Any]],
    what: str,
    check: object,
    within: float,
    processes: Sequence[ManagedProcess],
) -> None:
    """Until check(describe()) holds (the coordinator's DescribeHypervisor); ProcessStartError
    when one of the processes exited meanwhile (a kill -9 aside) or after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        with contextlib.suppress(grpc.aio.AioRpcError):
            if check(await describe()):  # type: ignore[operator]
                return
        for process in processes:
            if process.process is not None and process.process.returncode not in (None, -9):
                raise ProcessStartError(
                    f"{process.name} exited ({process.process.returncode}); see {process.log_path}"
                )
        if loop.time() > deadline:
            raise ProcessStartError(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(0.05)
