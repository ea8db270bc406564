"""A scenario run in one process on virtual time: the same components, configured the same way.

`InProcessTestbed` starts one pCPU host (every pCPU), the coordinator and dom0 on
this event loop, each from the very command line the launcher would give its
process (`launcher_args`), parsed by the role's own parser and started by the
role's own `setup_from_args`, but all on one `VirtualClock`. `run_in_process`
then drives the scenario's workload against it, drains, and returns the same
`RunData` a real run gives, for the same checkers.

What it leaves to real runs (named, and refused with one line when a scenario asks):
kill, pause and partition faults (they act on processes and links), network
namespaces and TLS. rpc faults are applied as in a real run (a rule on a pCPU host without a `pcpu`
is refused when the scenario has several hosts: here one host holds every pCPU).
Latency is not judged on virtual time (see `virtual_clock`): the scenario's
latency bounds are dropped, and the runner's `run_started` event says `clock: virtual`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

import grpc

from xenmca.dom0 import command as dom0_command
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.pcpu import command as pcpu_command
from xenmca.rpc.channels import CHANNEL_OPTIONS
from xenmca.rpc.events import EventLog
from xenmca.rpc.identity import OPERATOR, TokenBook, call_metadata
from xenmca.testbed.infra.bed import describe_hypervisor
from xenmca.testbed.infra.launcher_args import dom0_argv, pcpu_host_argv, xen_argv
from xenmca.testbed.infra.spec import TestbedSpec, testbed_spec
from xenmca.testbed.run.data import RunData
from xenmca.testbed.run.fault_schedule import FaultScheduler
from xenmca.testbed.run.runner import (
    collected,
    describe_xen,
    logged_count,
    move_vcpu0,
    read_all_events,
    read_log,
    settle,
)
from xenmca.testbed.run.sampler import FINAL_PENDING_IDS, FirmwareReader, Sampler
from xenmca.testbed.run.virtual_clock import VirtualClock
from xenmca.testbed.run.workload import WorkloadDriver
from xenmca.testbed.run.workload_plan import plan_injections
from xenmca.testbed.scenario.model import Scenario
from xenmca.xen import command as xen_command

PROCESS_FAULTS = ("kill", "pause", "partition")
"""Fault kinds that need real processes or namespaces."""


class NotInProcess(ValueError):
    """The scenario needs something only a real run has; the message is one line."""


def check_in_process(scenario: Scenario) -> None:
    """NotInProcess naming the first thing the scenario asks that an in-process run lacks."""
    for number, fault in enumerate(scenario.faults):
        if fault.kind in PROCESS_FAULTS:
            raise NotInProcess(
                f"{scenario.name}: faults[{number}] is a {fault.kind} fault, which needs real "
                "processes: run it without the virtual clock"
            )
        several_hosts = scenario.pcpus > max(1, scenario.pcpus_per_host)
        if fault.target.startswith("pcpu") and several_hosts and "pcpu" not in fault.params:
            raise NotInProcess(
                f"{scenario.name}: faults[{number}] is an rpc rule for every pCPU of "
                f"{fault.target}'s host; in one process that would be every pCPU: give it a pcpu"
            )
    if scenario.network != "loopback":
        raise NotInProcess(f"{scenario.name}: network {scenario.network} needs real processes")


def fits(scenario: Scenario) -> bool:
    """Whether the scenario can run in one process (check_in_process finds nothing)."""
    try:
        check_in_process(scenario)
    except NotInProcess:
        return False
    return True


@dataclasses.dataclass
class InProcessComponent:
    """What the fault schedule asks of a component's process, for one that is not a process."""

    name: str
    starts: int = 1
    running: bool = True
    pid: int = dataclasses.field(default_factory=os.getpid)
    last_start_wait_s: float = 0.0

    async def _refuse(self) -> None:
        raise NotInProcess(f"{self.name} is not a process of its own: it cannot be signalled")

    async def start(self) -> None:
        await self._refuse()

    async def wait_ready(self) -> None:
        await self._refuse()

    async def kill(self) -> None:
        await self._refuse()

    async def pause(self) -> None:
        await self._refuse()

    async def resume(self) -> None:
        await self._refuse()


def _args(
    add_arguments: Callable[[argparse.ArgumentParser], None], argv: Sequence[str]
) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


class InProcessTestbed:
    """The scenario's pCPUs, coordinator and dom0 in this process, on one virtual clock."""

    def __init__(self, spec: TestbedSpec, clock: VirtualClock) -> None:
        spec.workdir.mkdir(parents=True, exist_ok=True)
        self.spec = spec
        self.clock = clock
        self.workdir = spec.workdir
        self.db_path = self.workdir / "dom0.sqlite"
        self.token_file = self.workdir / "tokens.json"
        self.tokens = TokenBook.generate()
        self.pcpu_addresses: dict[int, str] = {}
        self.xen_address = ""
        self._stack = contextlib.AsyncExitStack()
        self._components: dict[str, InProcessComponent] = {}

    async def __aenter__(self) -> InProcessTestbed:
        self.tokens.save(self.token_file)
        await self._stack.__aenter__()
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        spec, clock = self.spec, self.clock
        argv = pcpu_host_argv(spec, 0, (0, spec.pcpus - 1), "127.0.0.1", 0)
        report = await pcpu_command.setup_from_args(
            _args(pcpu_command.add_arguments, argv[2:]), clock
        )(self._stack)
        assert report is not None  # the host reports its pCPUs' addresses
        self.pcpu_addresses = {int(pcpu): address for pcpu, address in report.items()}
        inventory = self.workdir / "inventory.txt"
        inventory.write_text("".join(f"{p} {a}\n" for p, a in sorted(self.pcpu_addresses.items())))
        argv = xen_argv(spec, "127.0.0.1:0", inventory)
        report = await xen_command.setup_from_args(
            _args(xen_command.add_arguments, argv[2:]), clock
        )(self._stack)
        assert report is not None  # the coordinator reports its address
        self.xen_address = report["address"]
        argv = dom0_argv(spec, self.xen_address, self.db_path)
        await dom0_command.setup_from_args(_args(dom0_command.add_arguments, argv[1:]), clock)(
            self._stack
        )
        await self._until_ready()

    async def _until_ready(self, within: float = 30.0) -> None:
        """Every pCPU's interrupt stream open and dom0 attached (real seconds)."""
        async with asyncio.timeout(within):
            while True:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    state = await self.describe()
                    if state.dom0_attached and all(link.connected for link in state.pcpus):
                        return
                await asyncio.sleep(0.01)

    def process(self, name: str) -> InProcessComponent:
        return self._components.setdefault(name, InProcessComponent(name))

    def host_of(self, pcpu: int) -> InProcessComponent:
        return self.process("pcpu-host0")

    @property
    def pcpu_hosts(self) -> list[InProcessComponent]:
        return [self.process("pcpu-host0")]

    def channel(self, address: str) -> grpc.aio.Channel:
        """A channel to a component, as the operator; its calls keep the clock still."""
        return grpc.aio.insecure_channel(
            address, options=CHANNEL_OPTIONS, interceptors=[self.clock.interceptor()]
        )

    def operator_metadata(self) -> tuple[tuple[str, str], ...]:
        return call_metadata(self.tokens.token_for(OPERATOR))

    operator_credentials = None
    metrics_urls: dict[str, str] = {}
    processes: tuple[InProcessComponent, ...] = ()  # no processes of their own to measure

    async def cut(self, name: str, for_s: float | None = None) -> None:
        raise NotInProcess(f"{name}: a partition needs real processes")

    async def heal(self, name: str) -> None:
        raise NotInProcess(f"{name}: a partition needs real processes")

    async def describe(self, within: float = 5.0) -> hv_pb2.DescribeHypervisorResponse:
        return await describe_hypervisor(
            self.channel, self.xen_address, self.operator_metadata(), within
        )


@contextlib.contextmanager
def _components_quiet() -> Iterator[None]:
    """The components' INFO lines (started, serving, stopped) kept out of the run's output,
    as a real run keeps them in each process's log file; warnings still show."""
    loggers = [logging.getLogger(name) for name in ("xenmca.pcpu", "xenmca.xen", "xenmca.dom0")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def without_latency_bounds(scenario: Scenario) -> Scenario:
    """The scenario with its latency bounds dropped: virtual time measures no machine."""
    checks = dataclasses.replace(
        scenario.checks,
        latency_p99_ms=None,
        latency_max_ms=None,
        latency_p99_floors=None,
        latency_max_floors=None,
    )
    return dataclasses.replace(scenario, checks=checks)


async def run_in_process(
    scenario: Scenario, out_dir: Path, clock: VirtualClock | None = None
) -> RunData:
    """Run scenario in this process on virtual time; the same RunData as a real run.

    NotInProcess when the scenario needs real processes (check_in_process).
    """
    check_in_process(scenario)
    scenario = without_latency_bounds(scenario)
    clock = clock or VirtualClock()
    advancer = asyncio.create_task(clock.run(), name="virtual-clock")
    bed = InProcessTestbed(testbed_spec(scenario, out_dir), clock)
    events = EventLog("runner", out_dir / "events-runner.jsonl", clock)
    try:
        with _components_quiet():
            async with bed:
                data = await _run_on(scenario, bed, clock, events, out_dir)
    finally:
        advancer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await advancer
        events.close()
    data.log, data.redelivered = read_log(bed.db_path)
    data.events = read_all_events(out_dir)
    with contextlib.suppress(FileNotFoundError):
        bed.token_file.unlink()
    return data


async def _run_on(
    scenario: Scenario,
    bed: InProcessTestbed,
    clock: VirtualClock,
    events: EventLog,
    out_dir: Path,
) -> RunData:
    # A real run samples and reads every 0.25 s; on virtual time each look is a jump of
    # the clock that costs real time, so a long scenario is looked at less often.
    look_s = max(0.25, scenario.duration_s / 1000)
    sampler = Sampler(bed, interval=look_s, clock=clock)
    reader = FirmwareReader(bed, clock=clock)
    driver = WorkloadDriver(
        plan_injections(scenario),
        bed.pcpu_addresses,
        bed.operator_metadata(),
        events,
        clock,
        channel_factory=bed.channel,
    )
    scheduler = FaultScheduler(bed, scenario.faults, events, clock)
    start_ns = clock.now_ns()
    events.emit("run_started", scenario=scenario.name, pcpus=scenario.pcpus, clock="virtual")
    sampler.start()
    faults = asyncio.create_task(scheduler.run(clock.now()))
    moves = asyncio.create_task(move_vcpu0(bed, scenario.vcpu0_moves, clock.now(), events, clock))
    try:
        summary = await driver.run()
        remaining = scenario.duration_s - (clock.now_ns() - start_ns) / 1e9
        if remaining > 0:
            await clock.sleep(remaining)
        workload_end_ns = clock.now_ns()
        faults.cancel()
        moves.cancel()
        await asyncio.gather(faults, moves, return_exceptions=True)
        await scheduler.heal_all()
        drain = await reader.drain(
            scenario.drain_timeout_s,
            scenario.drain_idle_s,
            interval=look_s,
            logged=functools.partial(logged_count, bed.db_path),
        )
        events.emit("drain_finished", **drain.event_fields())
        await settle(scenario, sampler, clock)
        firmware, missing = await reader.read(pending_ids_limit=FINAL_PENDING_IDS)
        final_xen = await describe_xen(bed)
    finally:
        faults.cancel()
        moves.cancel()
        await scheduler.abandon()
        await sampler.stop()
        await reader.close()
    problems = [f"firmware: pCPUs {missing} did not answer at the end"] if missing else []
    if summary.failed_calls:
        events.emit("workload_incomplete", **summary.as_dict())
    events.emit("run_finished", drained=drain.drained, virtual_jumps=clock.jumps)
    data = collected(scenario, (start_ns, workload_end_ns, clock.now_ns()), sampler, scheduler)
    data.firmware, data.requested = list(firmware), summary.requested_records
    data.drained, data.problems, data.results_dir = drain.drained, problems, str(out_dir)
    data.final_xen, data.clock = final_xen, "virtual"
    return data
