"""What overlapping faults on one component mean: each target's state, and what to do.

A target is one component process (``xen``, ``dom0``, ``pcpu-host<i>``; the
scheduler maps ``pcpu:N`` and ``pcpu-host:K`` to it). It can be held in three
ways, each by a group of faults (pure bookkeeping, no processes here):

- down (``kill``): the first kill kills; a kill of a component that is down
  joins the group as *merged* (nothing to kill). The component is started
  again once, when the last fault of the group heals.
- paused (``pause``): the first pause sends SIGSTOP, later ones are merged;
  SIGCONT is sent once, when the last of them heals. A pause of a component
  that is down is a *no-op* (nothing to stop; its restart is not paused). A
  kill of a paused component is a kill: it ends the pause group, whose heals
  then have nothing to resume.
- cut (``partition``): the first cut takes the link down, later ones are
  merged; the link comes up when the last of them heals. The link belongs to
  the host's network namespace, not to the process, so it is independent of
  down and paused (a component restarted while cut comes back cut).

A component is up when it is neither down nor paused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Hold(StrEnum):
    DOWN = "down"
    PAUSED = "paused"
    CUT = "cut"


class Outcome(StrEnum):
    """A fault's outcome in results.json (`outcome`)."""

    APPLIED = "applied"  # it acted (and its group was healed)
    MERGED = "merged"  # it joined an earlier fault's hold on the same target
    NO_OP = "no-op"  # nothing to do (e.g. a pause of a component that is down)
    HEAL_FAILED = "heal failed"  # the heal of its group raised
    APPLY_FAILED = "apply failed"  # applying it raised


HOLD_OF_KIND = {"kill": Hold.DOWN, "pause": Hold.PAUSED, "partition": Hold.CUT}
_VERB = {Hold.DOWN: "down", Hold.PAUSED: "paused", Hold.CUT: "cut off"}


@dataclass(frozen=True)
class Applied:
    """What applying one fault means for its target."""

    act: bool  # do it: kill -9, SIGSTOP, link down
    outcome: Outcome  # APPLIED, MERGED or NO_OP
    note: str  # why nothing was done ("" when act)
    # The faults it overlaps on this target: the group it joined, or the kill
    # holding the component down (no-op pause).
    overlaps: tuple[int, ...] = ()
    # Pause faults whose hold this kill ends (their process is gone).
    ended: tuple[int, ...] = ()


@dataclass(frozen=True)
class Healed:
    """What one fault's heal means for its target."""

    act: bool  # do it: start again, SIGCONT, link up (the last holder let go)
    # When act: every fault of the group, in the order applied.
    group: tuple[int, ...] = ()
    # When not act: the faults still holding the target.
    waiting_for: tuple[int, ...] = ()


@dataclass
class _Group:
    members: list[int] = field(default_factory=list)  # every fault that joined, in order
    holding: set[int] = field(default_factory=set)  # those not healed yet


@dataclass
class TargetState:
    """One target's holds; a hold is on while its group has a fault not yet healed."""

    name: str
    groups: dict[Hold, _Group] = field(default_factory=dict)

    def held(self, hold: Hold) -> bool:
        return hold in self.groups

    def since(self, hold: Hold) -> int | None:
        """The fault that began the hold, or None when it is off."""
        group = self.groups.get(hold)
        return group.members[0] if group else None

    def members(self, hold: Hold) -> tuple[int, ...]:
        group = self.groups.get(hold)
        return tuple(group.members) if group else ()

    @property
    def up(self) -> bool:
        return not (self.held(Hold.DOWN) or self.held(Hold.PAUSED))

    def describe(self) -> str:
        """In words: up, down or paused, and ", cut" when the link is down."""
        process = "down" if self.held(Hold.DOWN) else "paused" if self.held(Hold.PAUSED) else "up"
        return process + (", cut" if self.held(Hold.CUT) else "")


class FaultTargets:
    """The state of every target under kill, pause and partition faults (numbered by the caller)."""

    def __init__(self) -> None:
        self._targets: dict[str, TargetState] = {}
        self._holds: dict[int, tuple[str, Hold]] = {}  # fault -> what it holds until healed

    def state(self, target: str) -> TargetState:
        return self._targets.setdefault(target, TargetState(target))

    def holding(self) -> list[int]:
        """Faults still holding a target (not healed), in the order applied."""
        return sorted(self._holds)

    def holds_of(self, fault: int) -> tuple[str, Hold] | None:
        return self._holds.get(fault)

    def apply(self, fault: int, kind: str, target: str) -> Applied:
        """Fault number `fault` of kind kill, pause or partition is applied to target now."""
        if fault in self._holds:
            raise ValueError(f"fault #{fault} was already applied")
        hold = HOLD_OF_KIND[kind]
        state = self.state(target)
        down_since = state.since(Hold.DOWN)
        if hold is Hold.PAUSED and down_since is not None:
            return Applied(
                act=False,
                outcome=Outcome.NO_OP,
                note=f"no-op: {target} down since fault #{down_since}, nothing to pause",
                overlaps=state.members(Hold.DOWN),
            )
        ended: tuple[int, ...] = ()
        if hold is Hold.DOWN and state.held(Hold.PAUSED):
            paused = state.groups.pop(Hold.PAUSED)
            ended = tuple(paused.members)
            for member in paused.holding:
                del self._holds[member]
        group = state.groups.get(hold)
        self._holds[fault] = (target, hold)
        if group is not None:
            first = group.members[0]
            overlaps = tuple(group.members)
            group.members.append(fault)
            group.holding.add(fault)
            return Applied(
                act=False,
                outcome=Outcome.MERGED,
                note=f"no-op: {target} already {_VERB[hold]} since fault #{first}",
                overlaps=overlaps,
            )
        state.groups[hold] = _Group([fault], {fault})
        return Applied(act=True, outcome=Outcome.APPLIED, note="", overlaps=ended, ended=ended)

    def heal(self, fault: int) -> Healed:
        """Fault `fault`'s time is up (or the workload ended): heal its target if it was the last.

        A fault that holds nothing (a no-op, a pause ended by a kill, one already
        healed) heals nothing.
        """
        held = self._holds.pop(fault, None)
        if held is None:
            return Healed(act=False)
        target, hold = held
        state = self._targets[target]
        group = state.groups[hold]
        group.holding.discard(fault)
        if group.holding:
            return Healed(act=False, waiting_for=tuple(sorted(group.holding)))
        del state.groups[hold]
        return Healed(act=True, group=tuple(group.members))
