"""The record of a run's faults: each fault applied, and how it ended, as results.json reports it.

A fault is *active* from when it is applied until its record is written: when it
is healed, or when the last fault of its overlap is healed (see fault_targets).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from xenmca.rpc.events import EventLog
from xenmca.testbed.infra.bed import Component
from xenmca.testbed.run.data import FaultRecord
from xenmca.testbed.run.fault_targets import Outcome
from xenmca.testbed.scenario.model import Fault


@dataclass
class ActiveFault:
    """A fault applied whose record is not written yet (it, or its group, is not healed)."""

    number: int  # its index in the scenario's faults
    fault: Fault
    process: Component  # the target's process (its name is the fault_targets key)
    start_ns: int
    effect: str
    outcome: Outcome = Outcome.APPLIED
    overlapped_by: set[int] = field(default_factory=set)
    # Set when its own heal came while other faults still held the target.
    own_heal_ns: int | None = None
    # rpc: where the rule is, its id, and the process's start count when it was added.
    rule: tuple[str, str] | None = None
    generation: int = 0
    pid: int | None = None


def fault_numbers(faults: Iterable[int]) -> str:
    return ", ".join(f"#{n}" for n in faults)


class FaultLedger:
    """Every fault's record, in the order they ended, and the events that announce them."""

    def __init__(self, events: EventLog) -> None:
        self.events = events
        self.records: list[FaultRecord] = []

    def applied(self, active: ActiveFault) -> None:
        self.events.emit(
            "fault_applied",
            fault=active.fault.kind,
            target=active.fault.target,
            number=active.number,
            outcome=active.outcome.value,
            effect=active.effect,
            params=dict(active.fault.params),
        )

    def record(
        self,
        active: ActiveFault,
        end_ns: int,
        ended_by: int | None,
        outcome: Outcome | None = None,
        effect: str | None = None,
    ) -> None:
        record = FaultRecord(
            active.fault.kind,
            active.fault.target,
            active.start_ns,
            end_ns,
            active.effect if effect is None else effect,
            dict(active.fault.params),
            fault=active.number,
            outcome=(outcome or active.outcome).value,
            overlapped_by=tuple(sorted(active.overlapped_by)),
            ended_by=ended_by,
        )
        self.records.append(record)
        self.events.emit(
            "fault_healed",
            fault=record.kind,
            target=record.target,
            number=record.fault,
            outcome=record.outcome,
            effect=record.effect,
        )
