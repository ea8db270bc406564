"""Running a scenario end to end: testbed up, workload, drain, collect, check, write results.

The testbed is always torn down (on success, failed checks, exceptions and
Ctrl-C); the results folder is written from what the processes left behind:
dom0's log, every component's event file, and the samples taken on the way.

Before the workload clock starts the run warms up and calibrates the machine,
and after the drain it calibrates again and scrapes every process's metrics
(`xenmca.testbed.run.phases`); the testbed runs with metrics on.

The drain ends when nothing is pending and dom0's log holds every cleared
record, when nothing moved for the scenario's ``drain_idle_s`` (records left
are stranded), or at ``drain_timeout_s``; the runner's ``drain_finished`` event
says which (``how``) and how many records were left (``pending``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import platform
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from xenmca.dom0 import log_queries
from xenmca.dom0.log_queries import (
    LogUnavailable,
    duplicates_dropped,
    iter_records,
    open_reader,
)
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
from xenmca.rpc.clock import Clock, MonotonicClock
from xenmca.rpc.events import EventLog, read_events
from xenmca.testbed.infra.bed import Testbed
from xenmca.testbed.infra.launcher import LocalTestbed
from xenmca.testbed.infra.processes import cpu_seconds
from xenmca.testbed.infra.spec import testbed_spec
from xenmca.testbed.infra.target import TargetTestbed
from xenmca.testbed.run.data import LoggedRecord, RunData
from xenmca.testbed.run.fault_schedule import FaultScheduler
from xenmca.testbed.run.phases import after_drain, before_workload
from xenmca.testbed.run.sampler import FINAL_PENDING_IDS, FirmwareReader, Sampler
from xenmca.testbed.run.warmup import warm_plots
from xenmca.testbed.run.workload import WorkloadDriver
from xenmca.testbed.run.workload_plan import PlannedInjection, plan_injections
from xenmca.testbed.scenario.model import Scenario, Vcpu0Move


@dataclass
class RunOutcome:
    results: dict[str, Any]
    out_dir: Path


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("xenmca", "grpcio", "protobuf"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    return found


async def move_vcpu0(
    bed: Testbed, moves: Sequence[Vcpu0Move], start: float, events: EventLog, clock: Clock
) -> None:
    """SetVcpuPlacement at each move's time (as the operator); a failed move is an event."""
    for move in moves:
        delay = start + move.at_s - clock.now()
        if delay > 0:
            await clock.sleep(delay)
        try:
            async with bed.channel(bed.xen_address) as channel:
                reply = await hv_grpc.HypervisorServiceStub(channel).SetVcpuPlacement(
                    hv_pb2.SetVcpuPlacementRequest(pcpu=move.pcpu),
                    timeout=5.0,
                    metadata=bed.operator_metadata(),
                )
        except grpc.aio.AioRpcError as exc:
            events.emit("vcpu0_move_failed", pcpu=move.pcpu, error=exc.code().name)
            continue
        events.emit("vcpu0_moved", pcpu=move.pcpu, previous=reply.previous_pcpu)


def _cpu_now(bed: Testbed) -> dict[str, tuple[int, float]]:
    """Each running component's (pid, CPU seconds so far)."""
    now: dict[str, tuple[int, float]] = {}
    for process in bed.processes:
        pid = process.pid
        if pid is None or not process.running:
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            now[process.name] = (pid, cpu_seconds(pid))
    return now


def _cpu_used(
    before: dict[str, tuple[int, float]], after: dict[str, tuple[int, float]]
) -> dict[str, float | None]:
    """CPU seconds each component used in between; None when it was restarted meanwhile."""
    used: dict[str, float | None] = {}
    for name, (pid, start) in before.items():
        end = after.get(name)
        used[name] = round(end[1] - start, 3) if end is not None and end[0] == pid else None
    return used


def read_log(path: Path) -> tuple[list[LoggedRecord], int]:
    if not path.exists():
        return [], 0
    with contextlib.closing(open_reader(path)) as conn:
        rows = [
            LoggedRecord(
                r.pcpu,
                r.record_id,
                r.type,
                r.severity,
                r.created_monotonic_ns,
                r.logged_monotonic_ns,
            )
            for r in iter_records(conn)
        ]
        return rows, duplicates_dropped(conn)


def logged_count(path: Path) -> int | None:
    """Records in dom0's log now; None when it cannot be read (yet)."""
    try:
        with contextlib.closing(open_reader(path)) as conn:
            return log_queries.counts(conn).total
    except (LogUnavailable, sqlite3.Error):
        return None


def read_all_events(out_dir: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for path in sorted(out_dir.glob("events-*.jsonl")):
        events.extend(read_events(path))
    events.sort(key=lambda e: e.get("t_mono_ns", 0))
    return events


async def describe_xen(bed: Testbed) -> dict[str, Any] | None:
    """The coordinator's DescribeHypervisor now, as a dict of proto field names; None if silent."""
    try:
        state = await bed.describe(within=5.0)
    except grpc.aio.AioRpcError:
        return None
    described: dict[str, Any] = json_format.MessageToDict(state, preserving_proto_field_name=True)
    return described


def collected(
    scenario: Scenario,
    times_ns: tuple[int, int, int],
    sampler: Sampler,
    scheduler: FaultScheduler,
) -> RunData:
    """A run's data as far as the runner holds it: its times (start, workload end, end),
    the samples and the faults; the caller fills in what it read at the end."""
    start_ns, workload_end_ns, end_ns = times_ns
    return RunData(
        scenario=scenario,
        start_ns=start_ns,
        workload_end_ns=workload_end_ns,
        end_ns=end_ns,
        firmware=[],
        log=[],
        redelivered=0,
        events=[],
        samples=sampler.samples,
        faults=sorted(scheduler.records, key=lambda f: f.start_ns),
        requested=0,
        drained=False,
        versions=versions(),
    )


async def settle(scenario: Scenario, sampler: Sampler, clock: Clock) -> None:
    """Wait (bounded) until no line is polling, as a throttled line needs quiet polls."""
    deadline = clock.now() + scenario.settle_timeout_s
    while clock.now() < deadline:
        latest = sampler.latest
        if latest is not None and not any(
            line.mode == hv_pb2.THROTTLE_MODE_POLLING for line in latest.throttle
        ):
            return
        await clock.sleep(0.1)


class ScenarioRun:
    """One run of one scenario into one results folder."""

    def __init__(
        self,
        scenario: Scenario,
        out_dir: Path,
        console: Console | None = None,
        show_progress: bool = True,
        tls: bool = False,
        clock: Clock | None = None,
        target: Path | None = None,
    ) -> None:
        self.tls = tls
        # An inventory (target.json) of a deployment to run on, instead of starting one.
        self.target = target
        # The run's time: when the workload's injections, faults and vCPU0 moves are due,
        # how long the drain waits, and every stamp in the runner's events.
        self.clock: Clock = clock or MonotonicClock()
        self.scenario = scenario
        self.out_dir = out_dir
        self.console = console or Console(stderr=True)
        self.show_progress = show_progress

    async def execute(self) -> RunData:
        scenario = self.scenario
        self.out_dir.mkdir(parents=True, exist_ok=True)
        runner_events = EventLog("runner", self.out_dir / "events-runner.jsonl", self.clock)
        plan = plan_injections(scenario)
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not self.show_progress,
            transient=False,
        )
        problems: list[str] = []
        # The font cache and the plotting imports, on a thread while the testbed starts.
        plots = asyncio.ensure_future(asyncio.to_thread(warm_plots))
        try:
            with progress:
                task = progress.add_task("starting testbed", total=scenario.duration_s, info="")
                async with self._testbed() as bed:
                    progress.update(task, description=f"{scenario.name}: warm-up")
                    channels = await before_workload(
                        bed,
                        (injection.pcpu for injection in plan),
                        self.out_dir,
                        runner_events,
                        plots,
                        say=self._say if self.show_progress else None,
                    )
                    try:
                        data = await self._run_on(
                            bed, plan, progress, task, runner_events, problems, channels.channel
                        )
                    finally:
                        await channels.close()
        finally:
            plots.cancel()  # a no-op once awaited (before the workload); it never raises
            runner_events.close()
        log, redelivered = read_log(bed.db_path)
        data.log = log
        data.redelivered = redelivered
        data.events = read_all_events(self.out_dir)
        if isinstance(bed, LocalTestbed):
            with contextlib.suppress(FileNotFoundError):
                bed.token_file.unlink()  # per-run secrets do not outlive the run
        else:
            data.log = bed.corrected_log(log)
            data.problems.extend(bed.problems)
            data.clock_offsets = {name: o.as_dict() for name, o in bed.offsets.items()}
        return data

    def _testbed(self) -> LocalTestbed | TargetTestbed:
        if self.target is None:
            return LocalTestbed(testbed_spec(self.scenario, self.out_dir, self.tls))
        bed = TargetTestbed(self.target, self.out_dir)
        bed.check_scenario(self.scenario.pcpus)
        return bed

    def _say(self, line: str) -> None:
        self.console.print(line, soft_wrap=True, highlight=False)

    async def _run_on(
        self,
        bed: Testbed,
        plan: list[PlannedInjection],
        progress: Progress,
        task: TaskID,
        runner_events: EventLog,
        problems: list[str],
        channel_factory: Callable[[str], grpc.aio.Channel],
    ) -> RunData:
        scenario = self.scenario
        clock = self.clock
        sampler = Sampler(bed, clock=clock)
        reader = FirmwareReader(bed, clock=clock)
        driver = WorkloadDriver(
            plan,
            bed.pcpu_addresses,
            bed.operator_metadata(),
            runner_events,
            clock,
            channel_factory=channel_factory,
        )
        scheduler = FaultScheduler(bed, scenario.faults, runner_events, clock)
        start_ns = clock.now_ns()
        cpu_at_start = _cpu_now(bed)
        runner_events.emit("run_started", scenario=scenario.name, pcpus=scenario.pcpus)
        sampler.start()
        faults = asyncio.create_task(scheduler.run(clock.now()))
        moves = asyncio.create_task(
            move_vcpu0(bed, scenario.vcpu0_moves, clock.now(), runner_events, clock)
        )

        def info() -> str:
            latest = sampler.latest
            if latest is None:
                return ""
            c = latest.counters
            return f"copied {c.records_copied}  cleared {c.records_cleared}  polls {c.polls}"

        progress.update(task, description=f"{scenario.name}: workload")
        workload = asyncio.create_task(driver.run())
        try:
            while not workload.done():
                elapsed = (clock.now_ns() - start_ns) / 1e9
                progress.update(task, completed=min(elapsed, scenario.duration_s), info=info())
                await asyncio.wait({workload}, timeout=0.2)
            summary = workload.result()
            remaining = scenario.duration_s - (clock.now_ns() - start_ns) / 1e9
            while remaining > 0:
                progress.update(task, completed=scenario.duration_s - remaining, info=info())
                await clock.sleep(min(0.2, remaining))
                remaining = scenario.duration_s - (clock.now_ns() - start_ns) / 1e9
            workload_end_ns = clock.now_ns()
            cpu_s = _cpu_used(cpu_at_start, _cpu_now(bed))
            faults.cancel()
            moves.cancel()
            await asyncio.gather(faults, moves, return_exceptions=True)
            await scheduler.heal_all()
            progress.update(
                task, completed=scenario.duration_s, description=f"{scenario.name}: drain"
            )
            drain = asyncio.create_task(
                reader.drain(
                    scenario.drain_timeout_s,
                    scenario.drain_idle_s,
                    logged=functools.partial(logged_count, bed.db_path),
                )
            )
            while not drain.done():
                progress.update(task, info=info())
                await asyncio.wait({drain}, timeout=0.2)
            drain_end = drain.result()
            drained = drain_end.drained
            runner_events.emit("drain_finished", **drain_end.event_fields())
            # Let throttled lines come back to interrupt mode (a poll must find nothing).
            await settle(self.scenario, sampler, clock)
            firmware, missing = await reader.read(pending_ids_limit=FINAL_PENDING_IDS)
            final_xen = await describe_xen(bed)
            await after_drain(bed, self.out_dir, runner_events)
            progress.update(task, description=f"{scenario.name}: done", info=info())
        finally:
            faults.cancel()
            moves.cancel()
            await scheduler.abandon()  # after heal_all (the normal path) there is nothing left
            await sampler.stop()
            await reader.close()
            workload.cancel()
        if missing:
            problems.append(f"firmware: pCPUs {missing} did not answer at the end")
        if summary.failed_calls:
            runner_events.emit("workload_incomplete", **summary.as_dict())
        runner_events.emit("run_finished", drained=drained)
        data = collected(scenario, (start_ns, workload_end_ns, clock.now_ns()), sampler, scheduler)
        data.firmware, data.requested, data.drained = (
            list(firmware),
            summary.requested_records,
            drained,
        )
        data.problems, data.results_dir = problems, str(self.out_dir)
        data.final_xen, data.cpu_s = final_xen, cpu_s
        return data
