"""A local testbed as real processes on loopback: pCPU hosts, the coordinator and dom0.

Ports are chosen up front (free at start), so a component restarted after a
kill comes back on the same address and its peers reconnect to it. Teardown
always happens: `async with LocalTestbed(...)` stops every process on success,
failure, exception and Ctrl-C (and children die with the launcher anyway).

With ``TestbedSpec(network="netns")`` (root only) every component runs in its
own network namespace (see `xenmca.testbed.infra.netns`): pCPU host i in
``pcpu-host<i>``, the coordinator in ``xen``, dom0 in ``dom0``, each listening
on its 169.254 address with the same port scheme as on loopback. Components
talk to each other through the namespaces' switch (so `cut` and `heal` act on
that traffic); the launcher reaches them through a loopback gateway, so
`pcpu_addresses` and `xen_address` stay 127.0.0.1 addresses in both modes,
while `pcpu_listen_addresses` and `xen_listen_address` are what the components
themselves use. Teardown deletes the namespaces after the processes stop.

The policies (`TestbedSpec.xen_policy`, ``dom0_policy``, ``sal_mode`` ...) reach
the processes as flags only when they differ from the defaults, so a default
testbed runs exactly the command lines it always did (`xenmca.testbed.infra.launcher_args`).
With ``TestbedSpec(metrics=True)`` (what ``up``, ``run`` and ``demo`` use) every
process also serves Prometheus metrics on a port of its own (`metrics_urls`; see
`xenmca.testbed.infra.metrics_ports`).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import TracebackType

import grpc

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.ops.pki import generate_test_pki
from xenmca.rpc.channels import open_channel
from xenmca.rpc.events import EventLog
from xenmca.rpc.identity import OPERATOR, TokenBook, call_metadata
from xenmca.rpc.tls import TlsFiles, channel_credentials
from xenmca.testbed.infra.agents import agent_argv, target_inventory, write_target
from xenmca.testbed.infra.bed import describe_hypervisor
from xenmca.testbed.infra.clock_skew import check_clock_skew, time_namespace_prefix
from xenmca.testbed.infra.launcher_args import (
    DEFAULT_DOM0_POLICY,
    DEFAULT_SAL_MODE,
    DOM0_POLICIES,
    check_policies,
    dom0_argv,
    dom0_policy_args,
    pcpu_host_argv,
    pcpu_policy_args,
    xen_argv,
    xen_policy_args,
)
from xenmca.testbed.infra.metrics_ports import assign_ports, metrics_flags, metrics_url
from xenmca.testbed.infra.netns import NETNS_RUN_DIR, NetnsUnavailable, NetworkLayout
from xenmca.testbed.infra.netns_gateway import LoopbackGateway
from xenmca.testbed.infra.processes import (
    ManagedProcess,
    free_port_range,
    wait_for_state,
)
from xenmca.testbed.infra.spec import TestbedSpec

__all__ = [
    "DEFAULT_DOM0_POLICY",
    "DEFAULT_SAL_MODE",
    "DOM0_POLICIES",
    "LocalTestbed",
    "TestbedSpec",
    "check_policies",
    "dom0_policy_args",
    "pcpu_policy_args",
    "xen_policy_args",
]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
NETWORKS = ("loopback", "netns")
XEN_HOST = "xen"
DOM0_HOST = "dom0"


class LocalTestbed:
    """Starts, watches and stops the components; knows every address and file."""

    __test__ = False  # not a pytest test class

    def __init__(self, spec: TestbedSpec) -> None:
        if spec.network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS} (got {spec.network!r})")
        check_policies(spec)
        self.spec = spec
        self.workdir = spec.workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tokens = TokenBook.generate()
        self.token_file = self.workdir / "tokens.json"
        self.pcpu_addresses: dict[int, str] = {}
        self.xen_address = ""
        self.pcpu_hosts: list[ManagedProcess] = []
        self.xen: ManagedProcess | None = None
        self.dom0: ManagedProcess | None = None
        self.db_path = self.workdir / "dom0.sqlite"
        # What the components listen on and tell each other (equal to the
        # addresses above on loopback; 169.254 addresses with network="netns").
        self.pcpu_listen_addresses: dict[int, str] = {}
        self.xen_listen_address = ""
        self.network: NetworkLayout | None = None
        # The launcher's own calls (inject, describe, faults) as the operator.
        self.operator_credentials: grpc.ChannelCredentials | None = None
        self.operator_tls: TlsFiles | None = None
        self._tls_flags: dict[str, list[str]] = {}
        self.gateway: LoopbackGateway | None = None
        self.network_events: EventLog | None = None
        # Each process's metrics port (where it listens) and the launcher's URL for it.
        self.metrics_ports: dict[str, int] = {}
        self.metrics_urls: dict[str, str] = {}
        # With spec.agents: each process's agent port, and its address from here.
        self.agent_ports: dict[str, int] = {}
        self.agent_addresses: dict[str, str] = {}
        self.target_file: Path | None = None

    # -- layout -------------------------------------------------------------------

    def _host_ranges(self) -> list[tuple[int, int]]:
        size = max(1, self.spec.pcpus_per_host)
        return [(s, min(self.spec.pcpus, s + size) - 1) for s in range(0, self.spec.pcpus, size)]

    def host_names(self) -> list[str]:
        """Every host by name: the pCPU hosts, then the coordinator's and dom0's."""
        pcpu_hosts = [self.pcpu_host_name(i) for i in range(len(self._host_ranges()))]
        return [*pcpu_hosts, XEN_HOST, DOM0_HOST]

    def pcpu_host_name(self, index: int) -> str:
        return f"pcpu-host{index}"

    def network_host_of(self, pcpu: int) -> str:
        """The name of the host (namespace) that serves pcpu: pcpu-host<i>."""
        return self.host_of(pcpu).name

    def _address(self, host: str) -> str:
        return self.network.address_of(host) if self.network is not None else HOST

    def _exec_prefix(self, host: str) -> list[str]:
        prefix = self.network.exec_prefix(host) if self.network is not None else []
        skew = self.spec.clock_skew_s.get(host)
        if skew is not None:
            prefix = [*prefix, *time_namespace_prefix(skew)]
        return prefix

    def _netns_path(self, host: str) -> str | None:
        """The namespace file a host's ports live in (a restart waits for them there)."""
        if self.network is None:
            return None
        return str(NETNS_RUN_DIR / self.network.namespace_of(host))

    def plan(self) -> None:
        """Choose the ports and write the token and inventory files; build every command line.

        Starts nothing (start() calls it first); afterwards each ManagedProcess's
        argv is what will run.
        """
        spec = self.spec
        check_clock_skew(spec, self.host_names())
        self.tokens.save(self.token_file)
        ranges = self._host_ranges()
        hosts = [self.pcpu_host_name(i) for i in range(len(ranges))]
        if spec.network == "netns":
            self.network = NetworkLayout([*hosts, XEN_HOST, DOM0_HOST])
        if spec.tls:
            self._make_certificates(hosts)
        metered, supervised = self._metered(hosts), self._supervised(hosts)
        base = free_port_range(spec.pcpus + 1 + len(metered) + len(supervised))
        self.metrics_ports = assign_ports(metered, base + spec.pcpus + 1)
        self.agent_ports = assign_ports(supervised, base + spec.pcpus + 1 + len(metered))
        self.agent_addresses = {n: f"{self._address(n)}:{p}" for n, p in self.agent_ports.items()}
        self.xen_listen_address = f"{self._address(XEN_HOST)}:{base + spec.pcpus}"
        self.xen_address = self.xen_listen_address
        for index, (first, last) in enumerate(ranges):
            name = hosts[index]
            host = self._address(name)
            argv = pcpu_host_argv(spec, index, (first, last), host, base)
            ports = tuple(range(base + first, base + last + 1))
            self.pcpu_hosts.append(self._process(name, argv, "pcpu", ports, ready=True))
            for pcpu in range(first, last + 1):
                self.pcpu_listen_addresses[pcpu] = f"{host}:{base + pcpu}"
        self.pcpu_addresses = dict(self.pcpu_listen_addresses)
        inventory = self.workdir / "inventory.txt"
        inventory.write_text(
            "".join(f"{p} {a}\n" for p, a in sorted(self.pcpu_listen_addresses.items()))
        )
        argv = xen_argv(spec, self.xen_listen_address, inventory)
        self.xen = self._process(XEN_HOST, argv, "xen", (base + spec.pcpus,), ready=True)
        argv = dom0_argv(spec, self.xen_listen_address, self.db_path)
        self.dom0 = self._process(DOM0_HOST, argv, "dom0", (), ready=False)
        self.metrics_urls = {
            name: metrics_url(f"{HOST}:{port}") for name, port in self.metrics_ports.items()
        }

    def _metered(self, pcpu_hosts: list[str]) -> list[str]:
        """The processes that serve metrics, in port order (none unless the spec asks)."""
        return [*pcpu_hosts, XEN_HOST, DOM0_HOST] if self.spec.metrics else []

    def _supervised(self, pcpu_hosts: list[str]) -> list[str]:
        """The processes run under an agent, in port order (none unless the spec asks)."""
        return [*pcpu_hosts, XEN_HOST, DOM0_HOST] if self.spec.agents else []

    def _process(
        self, name: str, argv: list[str], identity: str, ports: tuple[int, ...], *, ready: bool
    ) -> ManagedProcess:
        """One component's ManagedProcess: its TLS and metrics flags added, its ports listed."""
        host = self._address(name)
        metrics_port = self.metrics_ports.get(name)
        if metrics_port is not None:
            argv = [*argv, *metrics_flags(host, metrics_port)]
            ports = (*ports, metrics_port)  # a restart waits for this port to be free too
        tls_flags = self._tls_flags.get(identity, [])
        argv = [*argv, *tls_flags]
        agent_port = self.agent_ports.get(name)
        if agent_port is not None:
            argv = agent_argv(name, f"{host}:{agent_port}", self.workdir, argv, tls_flags)
            ports = (*ports, agent_port)
        return ManagedProcess(
            name,
            argv,
            self.workdir / "logs" / f"{name}.log",
            ready_file=self.workdir / f"ready-{name}.json" if ready else None,
            exec_prefix=self._exec_prefix(name),
            listen_host=host if ports else "",
            ports=ports,
            netns_path=self._netns_path(name),
        )

    def _make_certificates(self, pcpu_hosts: list[str]) -> None:
        """A CA and one certificate per identity, valid for every address a peer dials."""
        hosts = {HOST, "localhost", *(self._address(h) for h in (*pcpu_hosts, XEN_HOST, DOM0_HOST))}
        pki = generate_test_pki(self.workdir / "tls", hosts=sorted(hosts))
        self._tls_flags = {identity: files.flags() for identity, files in pki.items()}
        self.operator_tls = pki["operator"]
        self.operator_credentials = channel_credentials(pki["operator"])

    def channel(self, address: str) -> grpc.aio.Channel:
        """A channel from the launcher to a component, as the operator."""
        return open_channel(address, self.operator_credentials)

    @property
    def processes(self) -> list[ManagedProcess]:
        return [p for p in (*self.pcpu_hosts, self.xen, self.dom0) if p is not None]

    def process(self, name: str) -> ManagedProcess:
        for process in self.processes:
            if process.name == name:
                return process
        raise KeyError(name)

    def host_of(self, pcpu: int) -> ManagedProcess:
        return self.pcpu_hosts[pcpu // max(1, self.spec.pcpus_per_host)]

    # -- life -----------------------------------------------------------------------

    async def start(self) -> None:
        self.plan()
        if self.network is not None:
            await self._open_network(self.network)
        for host in self.pcpu_hosts:
            await host.start()
        await asyncio.gather(*(host.wait_ready() for host in self.pcpu_hosts))
        assert self.xen is not None and self.dom0 is not None
        await self.xen.start()
        await self.xen.wait_ready()
        await self.wait_pcpus_connected()
        if self.spec.start_dom0:
            await self.dom0.start()
            await self.wait_dom0_attached()
        if self.agent_addresses:
            hosts = [
                (h.name, first, last)
                for h, (first, last) in zip(self.pcpu_hosts, self._host_ranges(), strict=True)
            ]
            inventory = target_inventory(
                self.xen_address,
                self.pcpu_addresses,
                self.agent_addresses,
                hosts,
                self.token_file,
                self.db_path,
                self.operator_tls,
            )
            self.target_file = write_target(self.workdir, inventory)

    async def _open_network(self, network: NetworkLayout) -> None:
        """Create the namespaces and the launcher's loopback gateway into them."""
        self.network_events = EventLog("network", self.workdir / "events-network.jsonl")
        network.create()  # synchronous: a cancelled start never leaves half a layout behind
        self.network_events.emit(
            "network_created",
            prefix=network.prefix,
            hosts={h: network.address_of(h) for h in network.hosts},
        )
        # The same port scheme on 127.0.0.1 as inside: pCPU p at base + p, coordinator last.
        self.gateway = gateway = LoopbackGateway(network)
        base = free_port_range(self.spec.pcpus + 1 + len(self.metrics_ports))
        for pcpu, address in self.pcpu_listen_addresses.items():
            port = int(address.rpartition(":")[2])
            host = self.network_host_of(pcpu)
            self.pcpu_addresses[pcpu] = await gateway.open(host, port, base + pcpu)
        port = int(self.xen_listen_address.rpartition(":")[2])
        self.xen_address = await gateway.open(XEN_HOST, port, base + self.spec.pcpus)
        for offset, (name, port) in enumerate(self.metrics_ports.items()):
            local = await gateway.open(name, port, base + self.spec.pcpus + 1 + offset)
            self.metrics_urls[name] = metrics_url(local)
        for name, port in self.agent_ports.items():
            self.agent_addresses[name] = await gateway.open(name, port)

    async def stop(self) -> None:
        """Stop dom0 first (so it does not log errors about the others), then the rest.

        With namespaces, they are deleted last, whatever happened before.
        """
        try:
            for group in ([self.dom0], [self.xen], self.pcpu_hosts):
                await asyncio.gather(*(p.stop() for p in group if p is not None))
        finally:
            self._close_network_now()
            if self.gateway is not None:
                gateway, self.gateway = self.gateway, None
                await gateway.close()

    def _close_network_now(self) -> None:
        if self.network is not None and self.network.created:
            self.network.destroy()  # kills anything still running in the namespaces
            if self.network_events is not None:
                self.network_events.emit("network_destroyed", prefix=self.network.prefix)
        if self.network_events is not None:
            self.network_events.close()
            self.network_events = None

    # -- network faults (network="netns" only) -------------------------------------------

    def _network_or_refuse(self) -> NetworkLayout:
        if self.network is None or not self.network.created:
            raise NetnsUnavailable(
                "cutting a host needs a testbed started with network='netns' (root only)"
            )
        return self.network

    async def cut(self, host: str, for_s: float | None = None) -> None:
        """Take host's link down ("pcpu-host<i>", "xen" or "dom0"): its peers lose it.

        for_s (how long the fault means to last) is not needed: the launcher heals it."""
        network = self._network_or_refuse()
        await asyncio.to_thread(network.cut, host)
        if self.network_events is not None:
            self.network_events.emit("link_cut", host=host, address=network.address_of(host))

    async def heal(self, host: str) -> None:
        """Bring host's link up again."""
        network = self._network_or_refuse()
        await asyncio.to_thread(network.heal, host)
        if self.network_events is not None:
            self.network_events.emit("link_healed", host=host, address=network.address_of(host))

    async def __aenter__(self) -> LocalTestbed:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.shield(self.stop())

    # -- inspection -----------------------------------------------------------------

    def operator_metadata(self) -> tuple[tuple[str, str], ...]:
        return call_metadata(self.tokens.token_for(OPERATOR))

    async def describe(self, within: float = 5.0) -> hv_pb2.DescribeHypervisorResponse:
        return await describe_hypervisor(
            self.channel, self.xen_address, self.operator_metadata(), within
        )

    async def _until(self, what: str, check: object, within: float) -> None:
        await wait_for_state(self.describe, what, check, within, self.processes)

    async def wait_pcpus_connected(self, within: float = 60.0) -> None:
        await self._until(
            "every pCPU's interrupt stream",
            lambda state: all(link.connected for link in state.pcpus),
            within,
        )

    async def wait_dom0_attached(self, within: float = 30.0) -> None:
        await self._until("dom0 to attach", lambda state: state.dom0_attached, within)
