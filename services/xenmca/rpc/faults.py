"""Per-RPC fault injection inside a server process: the rules, and the errors they answer with.

One ``FaultInjector`` holds a process's rules (a pCPU host shares one among all
its pCPU servers); every server of the process has a ``FaultWrapper``
(xenmca.rpc.fault_wrap) that knows which pCPU it serves. A rule names a method,
optionally a pCPU, and an action:

- DROP_REPLY: the handler runs (the server acts), then the reply is replaced by
  UNAVAILABLE: the lost reply. On a server stream the handler runs until it
  produces its first message; that message is dropped and the stream ends with
  UNAVAILABLE (a stream that ends without any message ends with UNAVAILABLE too).
  An error the handler itself answers passes through unchanged.
- DELAY: wait ``delay`` (on the injector's clock) before the handler runs; for a
  stream, before it starts.
- FAIL: answer UNAVAILABLE without running the handler.

Injected failures are rich errors (UNAVAILABLE, one ErrorInfo with reason
INJECTED_FAULT and metadata fault_id/action/method), so clients retry them as
they would a network failure.

A call is decided when it arrives: rules are tried in the order added; a rule
that matches counts the call (``matched``), lets it through while it is within
``skip``, and otherwise fires (``fired``). The first rule that fires takes the
call; later rules do not see it. A rule expires when its ``duration`` has passed
since it was added or it has fired ``count`` times; expired rules stay listed
until cleared. With no rules at all the interceptor costs one attribute check.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import grpc

from xenmca.fault.v1 import fault_service_pb2 as fault_pb2
from xenmca.rpc import errors
from xenmca.rpc.clock import Clock, MonotonicClock
from xenmca.rpc.fault_rules import (
    INJECTED_FAULT,
    MAX_RULES,
    FaultAction,
    FaultRuleError,
    FaultSpec,
    service_of,
)


@dataclass(frozen=True)
class Firing:
    """A rule that fired on one call: what to do to it."""

    fault_id: str
    action: FaultAction
    method: str
    delay: float = 0.0


@dataclass
class _Rule:
    fault_id: str
    spec: FaultSpec
    added_at: float
    matched: int = 0
    fired: int = 0

    def expired(self, now: float) -> bool:
        if self.spec.count and self.fired >= self.spec.count:
            return True
        return bool(self.spec.duration) and now >= self.added_at + self.spec.duration


@dataclass(frozen=True)
class FaultState:
    """A snapshot of one rule, as ListFaults reports it."""

    fault_id: str
    spec: FaultSpec
    added_at: float
    matched: int
    fired: int
    expired: bool

    def to_proto(self) -> fault_pb2.ActiveFault:
        return fault_pb2.ActiveFault(
            fault_id=self.fault_id,
            rule=self.spec.to_proto(),
            fired=self.fired,
            expired=self.expired,
            matched=self.matched,
        )


class TooManyFaults(Exception):
    """The process already holds MAX_RULES rules."""


@dataclass
class _Targets:
    """What the process's servers serve: pCPUs and full service names (for validation)."""

    pcpus: set[int] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    anonymous: bool = False  # a server without a pCPU (the coordinator)


class FaultInjector:
    """A process's fault rules. Thread-safe; ``match`` is cheap and never awaits."""

    def __init__(self, clock: Clock | None = None, *, max_rules: int = MAX_RULES) -> None:
        self.clock: Clock = clock or MonotonicClock()
        self.max_rules = max_rules
        self._rules: tuple[_Rule, ...] = ()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.targets = _Targets()

    # -- what the process serves --------------------------------------------

    def serve(self, pcpu: int | None, services: Iterable[str]) -> None:
        """Record that a server of this process (for pcpu, or none) serves these services."""
        with self._lock:
            if pcpu is None:
                self.targets.anonymous = True
            else:
                self.targets.pcpus.add(pcpu)
            self.targets.services.update(services)

    def check_target(self, spec: FaultSpec) -> None:
        """Raise FaultRuleError when no server of this process could ever match spec.

        Skipped while no server has registered (an injector used on its own).
        """
        targets = self.targets
        if not targets.services:
            return
        service = service_of(spec.method)
        if service not in targets.services:
            raise FaultRuleError(
                "METHOD_NOT_SERVED",
                "method",
                f"{spec.method} is not served by this process "
                f"(it serves {', '.join(sorted(targets.services))})",
            )
        if spec.pcpu is not None and spec.pcpu not in targets.pcpus:
            hosted = ", ".join(str(p) for p in sorted(targets.pcpus)) or "none"
            raise FaultRuleError(
                "UNKNOWN_PCPU",
                "pcpu",
                f"pCPU {spec.pcpu} is not served by this process (pCPUs here: {hosted})",
            )

    # -- rules ----------------------------------------------------------------

    @property
    def has_rules(self) -> bool:
        return bool(self._rules)

    def add(self, rule: FaultSpec | fault_pb2.FaultRule) -> str:
        """Add a rule (validated); returns its id. Raises FaultRuleError or TooManyFaults."""
        spec = rule if isinstance(rule, FaultSpec) else FaultSpec.from_proto(rule)
        with self._lock:
            now = self.clock.now()
            rules = self._rules
            if len(rules) >= self.max_rules:
                rules = tuple(r for r in rules if not r.expired(now))
                if len(rules) >= self.max_rules:
                    raise TooManyFaults(
                        f"this process already has {len(rules)} fault rules; clear some first"
                    )
            fault_id = f"fault-{next(self._ids)}"
            self._rules = (*rules, _Rule(fault_id, spec, now))
        return fault_id

    def clear(self, fault_id: str | None = None) -> int:
        """Remove the rule fault_id, or all rules when None; returns how many were removed."""
        with self._lock:
            before = len(self._rules)
            if fault_id is None:
                self._rules = ()
            else:
                self._rules = tuple(r for r in self._rules if r.fault_id != fault_id)
            return before - len(self._rules)

    def list(self) -> tuple[FaultState, ...]:
        """Every rule, oldest first, with its counts and whether it has expired."""
        with self._lock:
            now = self.clock.now()
            return tuple(
                FaultState(r.fault_id, r.spec, r.added_at, r.matched, r.fired, r.expired(now))
                for r in self._rules
            )

    def match(self, method: str, pcpu: int | None) -> Firing | None:
        """Decide one arriving call: the rule that fires on it (counted), or None.

        ``method`` is gRPC's path ("/package.Service/Method") or the full name.
        """
        if not self._rules:
            return None
        name = method[1:] if method.startswith("/") else method
        with self._lock:
            now = self.clock.now()
            for rule in self._rules:
                spec = rule.spec
                if spec.method != name or (spec.pcpu is not None and spec.pcpu != pcpu):
                    continue
                if rule.expired(now):
                    continue
                rule.matched += 1
                if rule.matched <= spec.skip:
                    continue
                rule.fired += 1
                return Firing(rule.fault_id, spec.action, name, spec.delay)
        return None


def injected_error(firing: Firing, pcpu: int | None) -> errors.RequestError:
    """The UNAVAILABLE rich error an injected failure answers with."""
    where = f" on pCPU {pcpu}" if pcpu is not None else ""
    metadata = {"fault_id": firing.fault_id, "action": firing.action.label, "method": firing.method}
    if pcpu is not None:
        metadata["pcpu"] = str(pcpu)
    return errors.RequestError(
        grpc.StatusCode.UNAVAILABLE,
        INJECTED_FAULT,
        f"injected fault {firing.fault_id}: {firing.action.label} {firing.method}{where}",
        metadata,
    )
