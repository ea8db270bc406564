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

Faults on one target may overlap; `fault_targets` says what that means. In
short: a kill of a component that is down, a pause of one that is paused and a
cut of a host that is cut are *merged* (recorded, nothing done), and the
component comes back once, when the last fault of the overlap ends (every
fault of the overlap gets that end time); a pause of a component that is down
is a *no-op*, and a kill of a paused one ends the pause. An rpc rule lives in
its process: none is added to a component that is down, and one whose process
was killed since is not cleared (a restarted process numbers its rules anew).
Each record says which fault it is (`fault`, its index in the scenario), its
`outcome`, the faults it `overlapped_by` and the fault whose heal `ended_by` it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from xenmca.rpc.clock import Clock, MonotonicClock
from xenmca.rpc.events import EventLog
from xenmca.testbed.infra.bed import Component, Testbed
from xenmca.testbed.infra.fault_client import add_fault, clear_faults
from xenmca.testbed.run.data import FaultRecord
from xenmca.testbed.run.fault_records import ActiveFault, FaultLedger, fault_numbers
from xenmca.testbed.run.fault_targets import HOLD_OF_KIND, FaultTargets, Hold, Outcome
from xenmca.testbed.scenario.model import Fault


class FaultScheduler:
    """Applies a scenario's faults at their times, heals them, and records what happened.

    Kill, pause and partition go through a `FaultTargets` model, so overlapping
    faults on one target are merged (see fault_targets): one kill, one restart,
    one SIGSTOP, one SIGCONT, one cut, one heal per overlap. Each target's
    process and its link are changed under a lock of their own, so a fault
    applied while a restart is under way waits for the restart to finish.
    """

    def __init__(
        self,
        bed: Testbed,
        faults: tuple[Fault, ...],
        events: EventLog,
        clock: Clock | None = None,
    ) -> None:
        self.bed = bed
        self.clock: Clock = clock or MonotonicClock()
        # (index in the scenario, fault), by time; equal times keep the file's order.
        self.faults = sorted(enumerate(faults), key=lambda item: item[1].at_s)
        self.events = events
        self.ledger = FaultLedger(events)
        self.targets = FaultTargets()
        self._active: dict[int, ActiveFault] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        # (process name, its start count) -> the kill that ended that instance
        self._killed_by: dict[tuple[str, int], int] = {}
        self._timers: set[asyncio.Task[None]] = set()  # sleeping until a heal is due
        self._working: set[asyncio.Task[None]] = set()  # applies and heals under way

    @property
    def records(self) -> list[FaultRecord]:
        """Every fault's record so far, in the order they ended."""
        return self.ledger.records

    def _process(self, target: str) -> Component:
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

    def _lock(self, hold: Hold, name: str) -> asyncio.Lock:
        key = ("link" if hold is Hold.CUT else "process", name)
        return self._locks.setdefault(key, asyncio.Lock())

    def _spawn(self, work: Coroutine[Any, Any, None], into: set[asyncio.Task[None]]) -> None:
        task = asyncio.create_task(work)
        into.add(task)
        task.add_done_callback(into.discard)

    async def run(self, start_monotonic: float) -> None:
        """Apply every fault at start + at_s (cancel to stop early; heal_all still finishes)."""
        for number, fault in self.faults:
            delay = start_monotonic + fault.at_s - self.clock.now()
            if delay > 0:
                await self.clock.sleep(delay)
            self._spawn(self._apply_or_record(number, fault), self._working)
        if self._working:
            await asyncio.wait(set(self._working))  # wait() does not cancel them if cancelled

    async def _apply_or_record(self, number: int, fault: Fault) -> None:
        try:
            await self._apply(number, fault)
        except Exception as exc:
            self.events.emit(
                "fault_failed", fault=fault.kind, target=fault.target, number=number, error=str(exc)
            )
            now = self.clock.now_ns()
            self.ledger.records.append(
                FaultRecord(
                    fault.kind,
                    fault.target,
                    now,
                    now,
                    f"could not apply: {exc}",
                    dict(fault.params),
                    fault=number,
                    outcome=Outcome.APPLY_FAILED.value,
                )
            )

    async def _apply(self, number: int, fault: Fault) -> None:
        params: dict[str, Any] = dict(fault.params)
        process = self._process(fault.target)
        if fault.kind == "rpc":
            await self._apply_rule(number, fault, process)
            return
        hold = HOLD_OF_KIND[fault.kind]
        async with self._lock(hold, process.name):
            start = self.clock.now_ns()
            was = self.targets.state(process.name).describe()
            decision = self.targets.apply(number, fault.kind, process.name)
            active = ActiveFault(
                number,
                fault,
                process,
                start,
                decision.note,
                decision.outcome,
                set(decision.overlaps),
            )
            if decision.outcome is Outcome.NO_OP:
                self.ledger.applied(active)
                self.ledger.record(active, start, None)
                return
            if decision.act:
                try:
                    active.effect = await self._act(fault, process, was)
                except BaseException:
                    self.targets.heal(number)  # it holds nothing after all
                    raise
                if fault.kind == "kill":
                    self._killed_by[(process.name, process.starts)] = number
                    if decision.ended:
                        active.effect += f" while paused by {fault_numbers(decision.ended)}"
                for ended in decision.ended:
                    self._end_paused(self._active.pop(ended), number, start)
            self._active[number] = active
            self.ledger.applied(active)
        if fault.kind == "kill":
            seconds = params.get("restart_after_s", 1.0)  # None: down until the workload ends
        else:
            seconds = params["duration_s"]
        if seconds is not None:
            self._later(float(seconds), number)

    async def _act(self, fault: Fault, process: Component, was: str) -> str:
        """Do a kill, pause or cut; returns the effect."""
        kind, pid = fault.kind, process.pid
        if kind == "kill":
            if not process.running:
                await process.kill()  # reaps it if it exited unseen
                return f"{process.name} was not running (pid {pid}); kept down"
            await process.kill()
            return f"killed pid {pid}"
        if kind == "pause":
            if not process.running:
                return f"{process.name} was not running (pid {pid}); nothing to stop"
            await process.pause()
            return f"paused pid {pid}"
        lasts = fault.params.get("duration_s")
        await self.bed.cut(process.name, None if lasts is None else float(lasts))  # type: ignore[arg-type]
        return f"link of {process.name} down" + (
            "" if was == "up" else f" ({process.name} itself {was})"
        )

    async def _undo(self, kind: str, process: Component) -> str:
        """End a kill (start again), a pause (SIGCONT) or a cut (link up); returns what it did."""
        if kind == "kill":
            await process.start()
            await process.wait_ready()
            detail = (
                f"started again as pid {process.pid} "
                f"(after {process.last_start_wait_s * 1000:.0f} ms for the old instance "
                "to be reaped and its ports freed)"
            )
            cut_by = self.targets.state(process.name).since(Hold.CUT)
            if cut_by is not None:
                detail += f", in its namespace, still cut by fault #{cut_by}"
            return detail
        if kind == "pause":
            await process.resume()
            return f"resumed pid {process.pid}"
        await self.bed.heal(process.name)
        return f"link of {process.name} up"

    async def _apply_rule(self, number: int, fault: Fault, process: Component) -> None:
        start = self.clock.now_ns()
        state = self.targets.state(process.name)
        down_since = state.since(Hold.DOWN)
        if down_since is not None:
            active = ActiveFault(
                number,
                fault,
                process,
                start,
                f"no-op: {process.name} down since fault #{down_since}, no rule added",
                Outcome.NO_OP,
                set(state.members(Hold.DOWN)),
            )
            self.ledger.applied(active)
            self.ledger.record(active, start, None)
            return
        generation, pid = process.starts, process.pid
        address = self._address(fault.target)
        fault_id = await add_fault(
            address,
            dict(fault.params),
            self.bed.operator_metadata(),
            credentials=self.bed.operator_credentials,
        )
        active = ActiveFault(
            number,
            fault,
            process,
            start,
            f"rule {fault_id} on {address}",
            rule=(address, fault_id),
            generation=generation,
            pid=pid,
        )
        self._active[number] = active
        self.ledger.applied(active)
        duration = float(fault.params.get("duration", 0) or 0)  # type: ignore[arg-type]
        if duration > 0:
            self._later(duration, number)

    async def _heal_rule(self, active: ActiveFault) -> None:
        self._active.pop(active.number, None)
        process = active.process
        assert active.rule is not None
        address, fault_id = active.rule
        ended_by: int | None = active.number
        outcome = active.outcome
        if process.starts != active.generation or not process.running:
            # The rule lived in a process that was killed since; a restarted one numbers
            # its rules from 1 again, so clearing the old id could remove someone else's.
            ended_by = self._killed_by.get((process.name, active.generation))
            killer = f" by fault #{ended_by}" if ended_by is not None else ""
            effect = f"; no rule to clear: pid {active.pid} that held it was killed{killer}"
            if ended_by is not None:
                active.overlapped_by.add(ended_by)
        else:
            try:
                await clear_faults(
                    address,
                    self.bed.operator_metadata(),
                    fault_id,
                    credentials=self.bed.operator_credentials,
                )
                effect = "; healed"
            except Exception as exc:
                effect, outcome = f"; heal failed: {exc}", Outcome.HEAL_FAILED
        self.ledger.record(active, self.clock.now_ns(), ended_by, outcome, active.effect + effect)

    def _end_paused(self, active: ActiveFault, killer: int, now: int) -> None:
        """A pause whose process a kill took away: nothing will be resumed."""
        active.overlapped_by.add(killer)
        effect = active.effect + f"; ended by kill #{killer}: the paused process was killed"
        self.ledger.record(active, now, killer, active.outcome, effect)

    def _later(self, seconds: float, number: int) -> None:
        async def heal_later() -> None:
            await self.clock.sleep(seconds)
            # Its own task, so cancelling the timers (heal_all) never interrupts a heal.
            self._spawn(self._heal(number), self._working)

        self._spawn(heal_later(), self._timers)

    async def _heal(self, number: int) -> None:
        """Fault `number`'s time is up: heal its target if no overlapping fault still holds it."""
        active = self._active.get(number)
        if active is None or active.own_heal_ns is not None:
            return  # recorded already, or waiting for its group's last heal
        if active.fault.kind == "rpc":
            await self._heal_rule(active)
            return
        kind = active.fault.kind
        name = active.process.name
        async with self._lock(HOLD_OF_KIND[kind], name):
            if self._active.get(number) is not active or active.own_heal_ns is not None:
                return  # ended (or deferred) while this waited for the lock
            decision = self.targets.heal(number)
            if not decision.act:
                active.own_heal_ns = self.clock.now_ns()
                self.events.emit(
                    "fault_heal_merged",
                    fault=kind,
                    target=active.fault.target,
                    number=number,
                    waiting_for=list(decision.waiting_for),
                )
                return
            failure, detail = None, ""
            try:
                detail = await self._undo(kind, active.process)
            except Exception as exc:
                failure = str(exc)
            end = self.clock.now_ns()
            group = decision.group
            for member in [self._active.pop(m) for m in group if m in self._active]:
                member.overlapped_by |= set(group) - {member.number}
                if failure is not None:
                    suffix, outcome = f"; heal failed: {failure}", Outcome.HEAL_FAILED
                elif len(group) == 1:
                    suffix, outcome = f"; healed: {detail}", member.outcome
                else:
                    suffix = (
                        f"; healed once for overlapping faults {fault_numbers(group)}, "
                        f"when the last of them (#{number}) ended: {detail}"
                    )
                    outcome = member.outcome
                self.ledger.record(member, end, number, outcome, member.effect + suffix)

    async def abandon(self) -> None:
        """Stop every pending heal and every fault under way without healing anything: the run
        failed and the testbed is being torn down, so nothing may be restarted after it."""
        tasks = [*self._timers, *self._working]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def heal_all(self) -> None:
        """End every fault still active (the workload is over; the drain must be able to finish).

        Faults being applied or healed finish first; then each group is healed
        once (processes and links before rpc rules, which need their process).
        """
        for task in list(self._timers):
            task.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        while self._working:
            await asyncio.wait(set(self._working))
        for active in sorted(
            self._active.values(), key=lambda a: (a.fault.kind == "rpc", a.start_ns)
        ):
            await self._heal(active.number)
        for active in list(self._active.values()):  # a group whose holder was lost: say so
            self._active.pop(active.number)
            self.ledger.record(
                active,
                self.clock.now_ns(),
                None,
                Outcome.HEAL_FAILED,
                active.effect + "; heal failed: never healed",
            )
