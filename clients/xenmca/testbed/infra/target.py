"""A deployment the runner did not start: `xenmca run SCENARIO --target target.json`.

`TargetTestbed` reads an inventory (infra.agents: the coordinator, every pCPU,
each host's `xenmca agent`, the token file and where dom0's log can be read) and
offers the runner what a `LocalTestbed` offers, without starting anything:

- the workload, the samples and the drain use the components' own addresses;
- kill and pause faults go to the target host's agent (KillChild then StartChild,
  PauseChild then ResumeChild), a partition to its CutNetwork / HealNetwork, rpc
  faults to the FaultService as in a local run;
- every agent's child events are streamed (WatchEvents, from the start of the run)
  into the results folder, each host's stamps corrected by its clock offset
  (NTP-style through ReadClock, infra.clock_offset), which results.json reports;
- dom0's log is read from `dom0.db`, a path the runner must be able to read (the
  same machine, or a shared volume). Without it the run is refused: the checks need it.
  Its stamps are corrected too: a record's creation by its pCPU host's offset, its
  commit by dom0's (`corrected_log`), so latencies stay differences on one clock.

A deployment with records from before the run is refused for now: the checks
count the firmware's counters from zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration

from xenmca.agent.service import EVENTS_OFFSET_HEADER
from xenmca.agent.v1 import agent_service_pb2 as agent_pb2
from xenmca.agent.v1 import agent_service_pb2_grpc as agent_grpc
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.rpc.channels import open_channel
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.identity import OPERATOR, TokenBook, call_metadata
from xenmca.rpc.tls import TlsFiles, channel_credentials
from xenmca.testbed.infra.bed import describe_hypervisor
from xenmca.testbed.infra.clock_offset import ClockOffset, agent_offset
from xenmca.testbed.run.data import LoggedRecord

CUT_LIMIT_S = 3600.0
"""How long an agent keeps a link cut by itself if the heal never reaches it."""


class TargetError(ValueError):
    """The deployment is not what a run needs, or did not answer (one line)."""


class InventoryError(TargetError):
    """The inventory itself cannot be used: bad input (one line)."""


@dataclass
class TargetSpec:
    """What the fault schedule reads of a testbed's spec."""

    pcpus_per_host: int


@dataclass
class AgentProcess:
    """One host's component as the fault schedule sees a process, driven through its agent."""

    name: str
    agent: str
    bed: TargetTestbed
    pid: int | None = None
    running: bool = True
    starts: int = 1
    last_start_wait_s: float = 0.0

    async def _verb(self, verb: str, request: Any) -> agent_pb2.Child:
        async with self.bed.channel(self.agent) as channel:
            reply = await getattr(agent_grpc.AgentServiceStub(channel), verb)(
                request, metadata=self.bed.operator_metadata(), timeout=30.0
            )
        child: agent_pb2.Child = reply.child
        self.pid = child.pid or None
        self.running = child.state in (
            agent_pb2.CHILD_STATE_RUNNING,
            agent_pb2.CHILD_STATE_PAUSED,
        )
        self.starts = child.starts
        return child

    async def describe(self) -> agent_pb2.Child:
        return await self._verb("DescribeChild", agent_pb2.DescribeChildRequest())

    async def kill(self) -> None:
        await self._verb("KillChild", agent_pb2.KillChildRequest())

    async def start(self) -> None:
        await self._verb("StartChild", agent_pb2.StartChildRequest())

    async def wait_ready(self) -> None:
        """The agent answers once the child runs; its servers come up on their own."""

    async def pause(self) -> None:
        await self._verb("PauseChild", agent_pb2.PauseChildRequest())

    async def resume(self) -> None:
        await self._verb("ResumeChild", agent_pb2.ResumeChildRequest())


@dataclass
class TargetTestbed:
    """A running deployment described by an inventory, as the runner's testbed."""

    inventory_path: Path
    out_dir: Path
    inventory: dict[str, Any] = field(default_factory=dict)
    offsets: dict[str, ClockOffset] = field(default_factory=dict)
    _watchers: list[asyncio.Task[None]] = field(default_factory=list)
    # Per component: the events file's offset its live stream started at, and the offset
    # of the last line received (where a catch-up resumes).
    _start_offset: dict[str, int] = field(default_factory=dict)
    _last_offset: dict[str, int] = field(default_factory=dict)
    # What the run could not read from the deployment (RunData.problems).
    problems: list[str] = field(default_factory=list)

    metrics_urls: dict[str, str] = field(default_factory=dict)
    processes: list[Any] = field(default_factory=list)  # no local processes to measure
    operator_credentials: grpc.ChannelCredentials | None = None

    def __post_init__(self) -> None:
        try:
            self.inventory = json.loads(self.inventory_path.read_text(encoding="utf-8"))
            inv = self.inventory
            self.xen_address: str = inv["xen"]["address"]
            self.pcpu_addresses = {int(p): a for p, a in inv["pcpus"].items()}
            self.token_file = Path(inv["token_file"])
            self.tokens = TokenBook.load(self.token_file)
            self.hosts = [(h["name"], list(h["pcpus"]), h["agent"]) for h in inv["pcpu_hosts"]]
            agents = {"xen": inv["xen"]["agent"], "dom0": inv["dom0"]["agent"]}
            tls = inv.get("tls")
            if tls is not None:
                files = TlsFiles(Path(tls["cert"]), Path(tls["key"]), Path(tls["ca"]))
                self.operator_credentials = channel_credentials(files)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InventoryError(f"{self.inventory_path}: not a usable inventory: {exc}") from None
        db = inv["dom0"].get("db")
        if not db or not Path(db).is_file():
            raise InventoryError(
                f"{self.inventory_path}: dom0's log ({db or 'no dom0.db'}) is not a file this "
                "runner can read; the checks need it (the same machine or a shared volume)"
            )
        self.db_path = Path(db)
        agents |= {name: agent for name, _, agent in self.hosts}
        self.components = {name: AgentProcess(name, agent, self) for name, agent in agents.items()}
        self.pcpu_hosts = [self.components[name] for name, _, _ in self.hosts]
        per_host = max((len(pcpus) for _, pcpus, _ in self.hosts), default=1)
        self.spec = TargetSpec(pcpus_per_host=per_host)

    # -- what the runner and the fault schedule use -------------------------------------

    def channel(self, address: str) -> grpc.aio.Channel:
        """A channel to a component or an agent, as the operator (its certificate under TLS)."""
        return open_channel(address, self.operator_credentials)

    def operator_metadata(self) -> tuple[tuple[str, str], ...]:
        return call_metadata(self.tokens.token_for(OPERATOR))

    def process(self, name: str) -> AgentProcess:
        return self.components[name]

    def host_of(self, pcpu: int) -> AgentProcess:
        for name, pcpus, _ in self.hosts:
            if pcpu in pcpus:
                return self.components[name]
        raise KeyError(pcpu)

    def corrected_log(self, log: list[LoggedRecord]) -> list[LoggedRecord]:
        """dom0's log on the runner's clock: each record's creation stamp (its pCPU host's
        monotonic clock) and its commit stamp (dom0's) corrected by that host's offset, so
        a latency is a difference on one clock, off by at most the two uncertainties."""
        dom0 = self.offsets["dom0"]
        hosts = {pcpu: self.offsets[name] for name, pcpus, _ in self.hosts for pcpu in pcpus}
        return [
            replace(
                record,
                created_monotonic_ns=(
                    hosts[record.pcpu].to_runner_ns(record.created_monotonic_ns)
                    if record.created_monotonic_ns > 0 and record.pcpu in hosts
                    else record.created_monotonic_ns
                ),
                logged_monotonic_ns=dom0.to_runner_ns(record.logged_monotonic_ns),
            )
            for record in log
        ]

    async def describe(self, within: float = 5.0) -> hv_pb2.DescribeHypervisorResponse:
        return await describe_hypervisor(
            self.channel, self.xen_address, self.operator_metadata(), within
        )

    async def cut(self, name: str, for_s: float | None = None) -> None:
        """CutNetwork through the host's agent for the fault's duration: the agent heals by
        itself then, even when the heal below cannot reach it (a cut pod in a cluster)."""
        duration = Duration()
        duration.FromNanoseconds(round((CUT_LIMIT_S if for_s is None else for_s) * 1e9))
        await self._network(name, "CutNetwork", agent_pb2.CutNetworkRequest(duration=duration))

    async def heal(self, name: str) -> None:
        """HealNetwork; a link the agent healed by itself already is healed all the same."""
        try:
            await self._network(name, "HealNetwork", agent_pb2.HealNetworkRequest())
        except grpc.aio.AioRpcError as exc:
            info = error_info_of(exc)
            if info is None or info.reason != "NETWORK_NOT_CUT":
                raise

    async def _network(self, name: str, verb: str, request: Any) -> None:
        async with self.channel(self.components[name].agent) as channel:
            await getattr(agent_grpc.AgentServiceStub(channel), verb)(
                request, metadata=self.operator_metadata(), timeout=30.0
            )

    # -- life ----------------------------------------------------------------------------

    def check_scenario(self, pcpus: int) -> None:
        """TargetError unless the deployment has exactly the scenario's pCPUs."""
        if sorted(self.pcpu_addresses) != list(range(pcpus)):
            raise InventoryError(
                f"the scenario has {pcpus} pCPUs; {self.inventory_path} lists "
                f"{len(self.pcpu_addresses)}"
            )

    async def __aenter__(self) -> TargetTestbed:
        try:
            await self._enter()
        except grpc.aio.AioRpcError as exc:
            raise TargetError(
                f"the deployment did not answer: {exc.code().name}: {exc.details()}"
            ) from None
        return self

    async def _enter(self) -> None:
        for process in self.components.values():
            child = await process.describe()
            if child.state != agent_pb2.CHILD_STATE_RUNNING:
                raise TargetError(f"{process.name} is not running (agent {process.agent})")
            async with self.channel(process.agent) as channel:
                self.offsets[process.name] = await agent_offset(channel, self.operator_metadata())
        state = await self.describe()
        if not state.dom0_attached:
            raise TargetError(f"no dom0 is attached to the coordinator at {self.xen_address}")
        if state.counters.records_copied or any(q.depth for q in state.queues):
            raise TargetError(
                "the deployment has handled records before this run; the checks count from "
                "zero, so start it afresh (xenmca up --agents)"
            )
        for name, process in self.components.items():
            started = asyncio.get_running_loop().create_future()
            self._watchers.append(asyncio.create_task(self._collect(name, process.agent, started)))
            await started  # the stream's start is fixed: every later event reaches the results

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for task in self._watchers:
            task.cancel()
        for task in self._watchers:
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await task
        # The live streams lag the files by the agents' poll: catch up to now, so the
        # results hold every event up to the end of the run (the checks read the last).
        for name, process in self.components.items():
            try:
                await self._catch_up(name, process.agent)
            except (grpc.aio.AioRpcError, TimeoutError) as error:
                detail = error.code().name if isinstance(error, grpc.aio.AioRpcError) else "timeout"
                self.problems.append(f"events: {name}'s last events not read ({detail})")

    def _event_line(self, name: str, message: agent_pb2.WatchEventsResponse) -> str:
        """One event on the runner's clock (the host's stamp kept as t_mono_ns_host)."""
        event = json.loads(message.json)
        if isinstance(event.get("t_mono_ns"), int):
            event["t_mono_ns_host"] = event["t_mono_ns"]
            event["t_mono_ns"] = self.offsets[name].to_runner_ns(event["t_mono_ns"])
        self._last_offset[name] = message.offset
        return json.dumps(event, separators=(",", ":")) + "\n"

    async def _collect(self, name: str, agent: str, started: asyncio.Future[None]) -> None:
        """The component's events from now on, on the runner's clock, into the results;
        `started` is set once the agent has fixed where the stream starts."""
        path = self.out_dir / f"events-{name}.jsonl"
        async with self.channel(agent) as channel:
            stream = agent_grpc.AgentServiceStub(channel).WatchEvents(
                agent_pb2.WatchEventsRequest(from_start=False), metadata=self.operator_metadata()
            )
            try:
                headers = dict(await stream.initial_metadata())
            except BaseException as error:
                if not started.done():
                    started.set_exception(error)
                raise
            self._start_offset[name] = int(headers.get(EVENTS_OFFSET_HEADER, 0))
            started.set_result(None)
            with path.open("a", encoding="utf-8") as out:
                async for message in stream:
                    out.write(self._event_line(name, message))
                    out.flush()

    async def _catch_up(self, name: str, agent: str) -> None:
        """The events the live stream had not delivered yet: from its last line to now."""
        if name not in self._start_offset:
            raise TimeoutError  # the live stream never started: nothing to catch up from
        last = self._last_offset.get(name)
        start = self._start_offset[name] if last is None else last
        path = self.out_dir / f"events-{name}.jsonl"
        async with self.channel(agent) as channel:
            stream = agent_grpc.AgentServiceStub(channel).WatchEvents(
                agent_pb2.WatchEventsRequest(from_start=True, from_offset=start, until_now=True),
                metadata=self.operator_metadata(),
                timeout=30.0,
            )
            with path.open("a", encoding="utf-8") as out:
                async for message in stream:
                    if last is None or message.offset > last:
                        out.write(self._event_line(name, message))
