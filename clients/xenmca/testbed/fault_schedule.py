"""The fault schedule of a scenario: what each kind means, checking it, and applying it.

Kinds (times in seconds from the start of the workload; targets are `xen`,
`dom0`, `pcpu-host:K` or `pcpu:N`):

- `kill`: kill -9, then start the same command again after `restart_after_s`
  (default 1.0; null: down until the workload ends). A pCPU host keeps its
  state dir, so its records survive.
- `pause`: SIGSTOP, then SIGCONT after `duration_s`.
- `rpc`: a per-RPC fault rule in that process's FaultService: `method`,
  `action` (drop-reply, delay, fail), optional `pcpu`, `delay`, `count`,
  `skip`, `duration` (not on dom0, which serves no RPCs).
- `partition`: the host's network link goes down, then up after `duration_s`
  (needs `network: netns`, as root).

`pcpu:N` names the host process that serves pCPU N. At the end of the workload
every fault still active is healed (processes started or resumed, rules
cleared, links up) so the drain can finish; the heal time is the fault's end.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from xenmca.rpc.events import EventLog
from xenmca.testbed.fault_client import add_fault, clear_faults, rule_from_dict
from xenmca.testbed.launcher import LocalTestbed
from xenmca.testbed.processes import ManagedProcess
from xenmca.testbed.run_data import FaultRecord
from xenmca.testbed.scenario_model import Fault

KINDS = ("kill", "pause", "rpc", "partition")
_TARGET = re.compile(r"^(xen|dom0|pcpu-host:(\d+)|pcpu:(\d+))$")


class FaultSpecError(ValueError):
    """A fault that cannot be applied; `field` names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _number(params: dict[str, Any], key: str, *, required: bool, default: float | None) -> None:
    value = params.get(key, default)
    if value is None:
        if required:
            raise FaultSpecError(key, "is required")
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 86_400:
        raise FaultSpecError(key, f"must be a number of seconds from 0 to 86400 (got {value!r})")


def validate_fault(fault: Fault, pcpus: int, pcpus_per_host: int, network: str) -> None:
    """Raise FaultSpecError naming the field when the fault cannot be applied."""
    if fault.kind not in KINDS:
        raise FaultSpecError(
            "kind", f"unknown fault kind {fault.kind!r} (known: {', '.join(KINDS)})"
        )
    match = _TARGET.match(fault.target)
    if match is None:
        raise FaultSpecError("target", "must be xen, dom0, pcpu-host:K or pcpu:N")
    hosts = -(-pcpus // pcpus_per_host)
    if match.group(2) is not None and int(match.group(2)) >= hosts:
        raise FaultSpecError("target", f"there are {hosts} pCPU hosts (0-{hosts - 1})")
    if match.group(3) is not None and int(match.group(3)) >= pcpus:
        raise FaultSpecError("target", f"pCPU {match.group(3)} does not exist (pcpus is {pcpus})")
    params = dict(fault.params)
    allowed = {
        "kill": {"restart_after_s"},
        "pause": {"duration_s"},
        "partition": {"duration_s"},
        "rpc": {"method", "action", "pcpu", "delay", "count", "skip", "duration"},
    }[fault.kind]
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise FaultSpecError(
            unknown[0],
            f"unknown parameter for a {fault.kind} fault (allowed: {', '.join(sorted(allowed))})",
        )
    if fault.kind == "kill":
        _number(params, "restart_after_s", required=False, default=1.0)
    elif fault.kind in ("pause", "partition"):
        _number(params, "duration_s", required=True, default=None)
        if fault.kind == "partition" and network != "netns":
            raise FaultSpecError("kind", "a partition needs network: netns (run as root)")
    else:
        if fault.target == "dom0":
            raise FaultSpecError("target", "dom0 serves no RPCs; put rpc faults on xen or pCPUs")
        try:
            rule_from_dict(params)
        except ValueError as exc:
            raise FaultSpecError("method" if "method" in str(exc) else "action", str(exc)) from None


@dataclass
class _Active:
    fault: Fault
    process: ManagedProcess | None
    start_ns: int
    effect: str
    heal: Any = None  # coroutine function that ends the fault
    record: FaultRecord | None = field(default=None)


class FaultScheduler:
    """Applies a scenario's faults at their times, heals them, and records what happened."""

    def __init__(self, bed: LocalTestbed, faults: tuple[Fault, ...], events: EventLog) -> None:
        self.bed = bed
        self.faults = sorted(faults, key=lambda f: f.at_s)
        self.events = events
        self.records: list[FaultRecord] = []
        self._active: list[_Active] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def _process(self, target: str) -> ManagedProcess:
        if target.startswith("pcpu-host:"):
            return self.bed.pcpu_hosts[int(target.split(":")[1])]
        if target.startswith("pcpu:"):
            return self.bed.host_of(int(target.split(":")[1]))
        return self.bed.process(target)

    def _address(self, target: str) -> str:
        if target == "xen":
            return self.bed.xen_address
        if target.startswith("pcpu:"):
            return self.bed.pcpu_addresses[int(target.split(":")[1])]
        host = int(target.split(":")[1])
        first = host * max(1, self.bed.spec.pcpus_per_host)
        return self.bed.pcpu_addresses[first]

    async def run(self, start_monotonic: float) -> None:
        """Apply every fault at start + at_s (cancel to stop early)."""
        loop = asyncio.get_running_loop()
        for fault in self.faults:
            delay = start_monotonic + fault.at_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await self._apply(fault)
            except Exception as exc:
                self.events.emit(
                    "fault_failed", fault=fault.kind, target=fault.target, error=str(exc)
                )
                now = time.monotonic_ns()
                self.records.append(
                    FaultRecord(
                        fault.kind,
                        fault.target,
                        now,
                        now,
                        f"could not apply: {exc}",
                        dict(fault.params),
                    )
                )

    async def _apply(self, fault: Fault) -> None:
        params: dict[str, Any] = dict(fault.params)
        start = time.monotonic_ns()
        if fault.kind == "rpc":
            address = self._address(fault.target)
            fault_id = await add_fault(
                address,
                params,
                self.bed.operator_metadata(),
                credentials=self.bed.operator_credentials,
            )
            active = _Active(fault, None, start, f"rule {fault_id} on {address}")

            async def heal_rule() -> None:
                await clear_faults(
                    address,
                    self.bed.operator_metadata(),
                    fault_id,
                    credentials=self.bed.operator_credentials,
                )

            active.heal = heal_rule
            duration = float(params.get("duration", 0) or 0)
            self._emit_applied(active)
            if duration > 0:
                self._later(duration, active)
            return
        process = self._process(fault.target)
        if fault.kind == "kill":
            old_pid = process.pid
            await process.kill()
            active = _Active(fault, process, start, f"killed pid {old_pid}")
            active.heal = lambda: self._restart(process)
            self._emit_applied(active)
            restart = params.get("restart_after_s", 1.0)
            if restart is not None:
                self._later(float(restart), active)
        elif fault.kind == "pause":
            process.signal(signal.SIGSTOP)
            active = _Active(fault, process, start, f"paused pid {process.pid}")

            async def resume() -> None:
                process.signal(signal.SIGCONT)

            active.heal = resume
            self._emit_applied(active)
            self._later(float(params["duration_s"]), active)
        else:  # partition
            await self.bed.cut(process.name)  # type: ignore[attr-defined]
            active = _Active(fault, process, start, f"link of {process.name} down")

            async def heal_link() -> None:
                await self.bed.heal(process.name)  # type: ignore[attr-defined]

            active.heal = heal_link
            self._emit_applied(active)
            self._later(float(params["duration_s"]), active)

    async def _restart(self, process: ManagedProcess) -> None:
        await process.start()
        await process.wait_ready()

    def _emit_applied(self, active: _Active) -> None:
        self._active.append(active)
        self.events.emit(
            "fault_applied",
            fault=active.fault.kind,
            target=active.fault.target,
            effect=active.effect,
            params=dict(active.fault.params),
        )

    def _later(self, seconds: float, active: _Active) -> None:
        async def heal_later() -> None:
            await asyncio.sleep(seconds)
            await self._heal(active)

        task = asyncio.create_task(heal_later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _heal(self, active: _Active) -> None:
        if active not in self._active:
            return
        self._active.remove(active)
        try:
            await active.heal()
            effect = active.effect + "; healed"
        except Exception as exc:
            effect = active.effect + f"; heal failed: {exc}"
        end = time.monotonic_ns()
        self.events.emit(
            "fault_healed", fault=active.fault.kind, target=active.fault.target, effect=effect
        )
        self.records.append(
            FaultRecord(
                active.fault.kind,
                active.fault.target,
                active.start_ns,
                end,
                effect,
                dict(active.fault.params),
            )
        )

    async def heal_all(self) -> None:
        """End every fault still active (the workload is over; the drain must be able to finish)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for active in list(self._active):
            await self._heal(active)
