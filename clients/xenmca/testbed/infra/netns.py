"""Hosts on one machine: a network namespace per component, joined by a bridge (root only).

Layout of one run (prefix ``xm-<6 hex>``, unique per run)::

    <prefix>-switch        a namespace holding the Linux bridge br0 and one port per host
    <prefix>-<host>        one namespace per host (pCPU host process, coordinator, dom0):
                           lo up, eth0 = the far end of its veth, 169.254.X.Y/16

Nothing is created in the machine's own (root) namespace: each veth pair is made
inside the switch namespace with its peer moved straight into the host's
namespace, so the machine's interfaces, routes and firewall are never touched
and several runs can share the same 169.254 addresses without clashing.

A cut takes the host's switch port down: its peers' packets are dropped (TCP
times out, as with a pulled cable) while the host itself keeps running. A heal
brings the port up again.

The launcher (in the root namespace) reaches components through
`LoopbackGateway`: a 127.0.0.1 port per component address whose connections are
opened from inside that component's namespace, to the component's own address.
That path is out of band (like a BMC): it does not cross the switch, so a cut
host can still be inspected and have errors injected, exactly as real hardware
keeps failing while its network is down.

Leftovers: `destroy()` removes every namespace with the run's prefix (and kills
what still runs in them). A launcher killed with -9 cannot clean up; its owner
file in ``/run/xenmca-netns`` lets the next `create()` sweep such orphans.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

NETNS_RUN_DIR = Path("/var/run/netns")
OWNER_DIR = Path("/run/xenmca-netns")
BRIDGE = "br0"
HOST_DEVICE = "eth0"
PREFIX_LEAD = "xm-"
SWITCH = "switch"
CLONE_NEWNET = 0x40000000
_HOST_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_PREFIX = re.compile(r"^xm-[a-z0-9]{1,12}$")


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be used here; the message is one line saying why."""


@dataclass(frozen=True)
class HostLink:
    """One host's place in the layout."""

    host: str
    namespace: str
    address: str
    switch_port: str


def link_local_address(index: int) -> str:
    """The index-th host address: 169.254.1.1, 169.254.1.2, ... (skips .0 and .255 rows)."""
    if not 0 <= index < 254 * 254:
        raise ValueError(f"host index {index} out of range")
    return f"169.254.{1 + index // 254}.{1 + index % 254}"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "no message"


def _run_ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise NetnsUnavailable(f"`ip {' '.join(args)}` failed: {_first_line(result.stderr)}")
    return result


def check_available() -> None:
    """Raise NetnsUnavailable unless this process may create network namespaces."""
    if os.geteuid() != 0:
        raise NetnsUnavailable(
            f"network namespaces need root (running as uid {os.geteuid()}); "
            "run as root or use the loopback network"
        )
    if shutil.which("ip") is None:
        raise NetnsUnavailable("network namespaces need iproute2's `ip` command, not found on PATH")


def existing_namespaces() -> list[str]:
    """Names from `ip netns list` (empty when there are none or `ip` is missing)."""
    if shutil.which("ip") is None:
        return []
    result = _run_ip("netns", "list", check=False)
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def _process_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # field 22: starttime


def _owner_alive(owner_file: Path) -> bool:
    try:
        pid_text, _, started = owner_file.read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    return _process_start_time(pid) == started


class NetworkLayout:
    """The namespaces, bridge and veth pairs of one testbed run."""

    def __init__(self, hosts: Sequence[str], prefix: str | None = None) -> None:
        if not hosts:
            raise ValueError("a network layout needs at least one host")
        if len(set(hosts)) != len(hosts):
            raise ValueError(f"host names must be unique: {list(hosts)}")
        for host in hosts:
            if not _HOST_NAME.match(host) or host == SWITCH:
                raise ValueError(
                    f"bad host name {host!r}: lower-case letters, digits and '-', "
                    f"at most 32 characters, not {SWITCH!r}"
                )
        self.prefix = prefix or PREFIX_LEAD + secrets.token_hex(3)
        if not _PREFIX.match(self.prefix):
            raise ValueError(f"bad prefix {self.prefix!r}: 'xm-' and up to 12 of [a-z0-9]")
        self.switch_namespace = f"{self.prefix}-{SWITCH}"
        self.links = {
            host: HostLink(
                host=host,
                namespace=f"{self.prefix}-{host}",
                address=link_local_address(index),
                switch_port=f"p{index}",
            )
            for index, host in enumerate(hosts)
        }
        self.created = False
        self._cut: set[str] = set()

    # -- queries --------------------------------------------------------------------

    @property
    def hosts(self) -> list[str]:
        return list(self.links)

    def _link(self, host: str) -> HostLink:
        try:
            return self.links[host]
        except KeyError:
            raise KeyError(f"no host {host!r} in this layout (hosts: {self.hosts})") from None

    def address_of(self, host: str) -> str:
        """The host's 169.254.X.Y address (without prefix length)."""
        return self._link(host).address

    def namespace_of(self, host: str) -> str:
        return self._link(host).namespace

    def exec_prefix(self, host: str) -> list[str]:
        """The command prefix that runs a program inside the host's namespace."""
        return ["ip", "netns", "exec", self.namespace_of(host)]

    def is_cut(self, host: str) -> bool:
        self._link(host)
        return host in self._cut

    def namespaces(self) -> list[str]:
        """Namespaces that exist now and belong to this run (its prefix)."""
        return [n for n in existing_namespaces() if n.startswith(self.prefix + "-")]

    @property
    def owner_file(self) -> Path:
        return OWNER_DIR / self.prefix

    # -- life -----------------------------------------------------------------------

    def create(self) -> None:
        """Create every namespace, the bridge and the links; NetnsUnavailable when it cannot."""
        check_available()
        self.sweep_orphans()
        self._write_owner()
        atexit.register(self.destroy)
        try:
            self._add_namespace(self.switch_namespace)
            sw = self.switch_namespace
            _run_ip("-n", sw, "link", "add", BRIDGE, "type", "bridge")
            _run_ip("-n", sw, "link", "set", BRIDGE, "up")
            for link in self.links.values():
                self._add_namespace(link.namespace)
                _run_ip(
                    "-n", sw, "link", "add", link.switch_port, "type", "veth",
                    "peer", "name", HOST_DEVICE, "netns", link.namespace,
                )  # fmt: skip
                _run_ip("-n", sw, "link", "set", link.switch_port, "master", BRIDGE)
                _run_ip("-n", sw, "link", "set", link.switch_port, "up")
                _run_ip(
                    "-n", link.namespace, "addr", "add", f"{link.address}/16", "dev", HOST_DEVICE
                )
                _run_ip("-n", link.namespace, "link", "set", HOST_DEVICE, "up")
        except NetnsUnavailable as exc:
            self.destroy()
            raise NetnsUnavailable(f"cannot set up network namespaces: {exc}") from None
        except BaseException:
            self.destroy()
            raise
        self.created = True

    def _add_namespace(self, name: str) -> None:
        _run_ip("netns", "add", name)
        _run_ip("-n", name, "link", "set", "lo", "up")

    def _write_owner(self) -> None:
        OWNER_DIR.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        temporary = OWNER_DIR / f".{self.prefix}.tmp"  # not a prefix: sweeps skip it
        temporary.write_text(f"{pid} {_process_start_time(pid)}\n")
        os.replace(temporary, self.owner_file)

    def destroy(self) -> None:
        """Remove every namespace of this prefix and what runs in them; safe to call again."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.destroy)
        _destroy_prefix(self.prefix)
        self._cut.clear()
        self.created = False

    @staticmethod
    def sweep_orphans() -> list[str]:
        """Destroy the namespaces of runs whose launcher is gone; returns their prefixes."""
        swept: list[str] = []
        if not OWNER_DIR.is_dir():
            return swept
        for owner_file in OWNER_DIR.iterdir():
            if _PREFIX.match(owner_file.name) and not _owner_alive(owner_file):
                _destroy_prefix(owner_file.name)
                swept.append(owner_file.name)
        return swept

    # -- faults ---------------------------------------------------------------------

    def cut(self, host: str) -> None:
        """Take the host's link down (its switch port): peers can no longer reach it."""
        link = self._link(host)
        _run_ip("-n", self.switch_namespace, "link", "set", link.switch_port, "down")
        self._cut.add(host)

    def heal(self, host: str) -> None:
        """Bring the host's link up again."""
        link = self._link(host)
        _run_ip("-n", self.switch_namespace, "link", "set", link.switch_port, "up")
        self._cut.discard(host)


def _destroy_prefix(prefix: str) -> None:
    """Kill what runs in, then delete, every namespace named prefix-*; remove the owner file."""
    for name in existing_namespaces():
        if not name.startswith(prefix + "-"):
            continue
        pids = _run_ip("netns", "pids", name, check=False).stdout.split()
        for pid in pids:
            if pid.isdigit() and int(pid) != os.getpid():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(pid), signal.SIGKILL)
        _run_ip("netns", "del", name, check=False)
    with contextlib.suppress(FileNotFoundError):
        (OWNER_DIR / prefix).unlink()


# -- the launcher's way in ------------------------------------------------------------------
