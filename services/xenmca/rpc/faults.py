"""Per-RPC fault injection inside a server process: the rules and the interceptor that applies them.

One ``FaultInjector`` holds a process's rules (a pCPU host shares one among all
its pCPU servers); every server of the process installs a ``FaultInterceptor``
that knows which pCPU it serves. A rule names a method, optionally a pCPU, and
an action:

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

import enum
import inspect
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import duration_pb2

from xenmca.fault.v1 import fault_service_pb2 as fault_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.rpc import errors
from xenmca.rpc.clock import Clock, MonotonicClock
from xenmca.rpc.events import EventLog
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2

log = logging.getLogger(__name__)

INJECTED_FAULT = "INJECTED_FAULT"
"""The ErrorInfo reason of every injected failure."""

MAX_DELAY_SECONDS = 300.0
"""Longest DELAY a rule may ask for (a call held longer than any client waits is pointless)."""

MAX_DURATION_SECONDS = 7 * 24 * 3600.0
"""Longest active window a rule may ask for; longer is "until cleared" (duration 0)."""

MAX_RULES = 1000
"""Most rules one process keeps (expired ones included); AddFault refuses more."""

_SERVICES = {
    service.full_name: service
    for service in (
        sal_pb2.DESCRIPTOR.services_by_name["SalService"],
        hv_pb2.DESCRIPTOR.services_by_name["HypervisorService"],
        fault_pb2.DESCRIPTOR.services_by_name["FaultService"],
    )
}
_SHORT_NAMES = {full.rpartition(".")[2]: full for full in _SERVICES}


class FaultAction(enum.IntEnum):
    """What a rule does to a call; the values are the proto's FaultAction numbers."""

    DROP_REPLY = fault_pb2.FAULT_ACTION_DROP_REPLY
    DELAY = fault_pb2.FAULT_ACTION_DELAY
    FAIL = fault_pb2.FAULT_ACTION_FAIL

    @property
    def label(self) -> str:
        """The command-line and event spelling: drop-reply, delay, fail."""
        return self.name.lower().replace("_", "-")

    @classmethod
    def parse(cls, text: str) -> FaultAction:
        """drop-reply / drop_reply / DROP_REPLY / FAULT_ACTION_DROP_REPLY, and so on."""
        key = text.strip().upper().replace("-", "_").removeprefix("FAULT_ACTION_")
        try:
            return cls[key]
        except KeyError:
            choices = ", ".join(a.label for a in cls)
            raise FaultRuleError(
                "INVALID_ACTION", "action", f"unknown fault action {text!r} (choose from {choices})"
            ) from None


class FaultRuleError(ValueError):
    """A rule that cannot be added; ``reason`` and ``field`` go into the ErrorInfo."""

    def __init__(self, reason: str, field_name: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field_name

    def request_error(self) -> errors.RequestError:
        return errors.invalid_argument(self.reason, str(self), field=self.field)


def known_methods() -> dict[str, tuple[str, ...]]:
    """Full service name -> its method names, for SalService, HypervisorService, FaultService."""
    return {name: tuple(m.name for m in s.methods) for name, s in _SERVICES.items()}


def normalise_method(name: str) -> str:
    """The full "package.Service/Method" name of a method given by full or short name.

    Accepts "/xenmca.sal.v1.SalService/ClearStateInfo" (gRPC's path),
    "xenmca.sal.v1.SalService/ClearStateInfo", "xenmca.sal.v1.SalService.ClearStateInfo",
    "SalService/ClearStateInfo" and "SalService.ClearStateInfo". Raises
    FaultRuleError (reason UNKNOWN_METHOD) for anything that is not a method of
    SalService, HypervisorService or FaultService.
    """
    text = name.strip().lstrip("/")
    if not text:
        raise FaultRuleError("UNKNOWN_METHOD", "method", "method is required")
    service_name, sep, method = text.rpartition("/")
    if not sep:
        service_name, _, method = text.rpartition(".")
    full_service = service_name if service_name in _SERVICES else _SHORT_NAMES.get(service_name)
    if full_service is None:
        services = ", ".join(sorted(_SHORT_NAMES))
        raise FaultRuleError(
            "UNKNOWN_METHOD",
            "method",
            f"unknown method {name!r}: not a method of {services} "
            "(write e.g. SalService.ClearStateInfo)",
        )
    methods = known_methods()[full_service]
    if method not in methods:
        raise FaultRuleError(
            "UNKNOWN_METHOD",
            "method",
            f"unknown method {name!r}: {full_service} has {', '.join(methods)}",
        )
    return f"{full_service}/{method}"


def service_of(method: str) -> str:
    """The full service name of a normalised method name."""
    return method.partition("/")[0]


def _seconds(value: duration_pb2.Duration, field_name: str, maximum: float) -> float:
    if value.nanos and (abs(value.nanos) >= 1_000_000_000 or (value.seconds * value.nanos < 0)):
        raise FaultRuleError(
            "INVALID_DURATION", field_name, f"{field_name} is not a valid Duration"
        )
    seconds = value.seconds + value.nanos / 1e9
    if seconds < 0:
        raise FaultRuleError(
            "INVALID_DURATION", field_name, f"{field_name} must not be negative (got {seconds} s)"
        )
    if seconds > maximum:
        raise FaultRuleError(
            "INVALID_DURATION",
            field_name,
            f"{field_name} of {seconds:g} s is more than the {maximum:g} s allowed",
        )
    return seconds


def _duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


@dataclass(frozen=True)
class FaultSpec:
    """A validated rule: full method name, optional pCPU, action, and its limits (seconds)."""

    method: str
    action: FaultAction
    pcpu: int | None = None
    delay: float = 0.0
    count: int = 0
    duration: float = 0.0
    skip: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", normalise_method(self.method))
        action: object = self.action
        if isinstance(action, str):
            object.__setattr__(self, "action", FaultAction.parse(action))
        elif isinstance(action, int) and not isinstance(action, FaultAction):
            try:
                object.__setattr__(self, "action", FaultAction(action))
            except ValueError:
                raise FaultRuleError(
                    "INVALID_ACTION", "action", f"unknown action number {action}"
                ) from None
        self.check()

    def check(self) -> None:
        """Raise FaultRuleError for values out of range or not fitting the action."""
        if not isinstance(self.action, FaultAction):
            raise FaultRuleError("INVALID_ACTION", "action", "action must be a FaultAction")
        for name, value in (("count", self.count), ("skip", self.skip)):
            if value < 0 or value > 0xFFFFFFFF:
                raise FaultRuleError("INVALID_COUNT", name, f"{name} must be 0..2^32-1")
        if self.pcpu is not None and (self.pcpu < 0 or self.pcpu > 0xFFFFFFFF):
            raise FaultRuleError("INVALID_PCPU", "pcpu", "pcpu must be 0..2^32-1")
        for name, seconds, maximum in (
            ("delay", self.delay, MAX_DELAY_SECONDS),
            ("duration", self.duration, MAX_DURATION_SECONDS),
        ):
            if not seconds >= 0:  # also catches NaN
                raise FaultRuleError(
                    "INVALID_DURATION", name, f"{name} must not be negative (got {seconds})"
                )
            if seconds > maximum:
                raise FaultRuleError(
                    "INVALID_DURATION",
                    name,
                    f"{name} of {seconds:g} s is more than the {maximum:g} s allowed",
                )
        if self.action is FaultAction.DELAY and self.delay <= 0:
            raise FaultRuleError(
                "MISSING_DELAY", "delay", "a delay fault needs a delay greater than 0"
            )
        if self.action is not FaultAction.DELAY and self.delay > 0:
            raise FaultRuleError(
                "UNEXPECTED_DELAY",
                "delay",
                f"delay applies only to delay faults, not {self.action.label}",
            )

    @classmethod
    def from_proto(cls, rule: fault_pb2.FaultRule) -> FaultSpec:
        """Validate a proto rule; raises FaultRuleError naming the field."""
        if rule.action == fault_pb2.FAULT_ACTION_UNSPECIFIED:
            raise FaultRuleError("INVALID_ACTION", "action", "action is required")
        try:
            action = FaultAction(rule.action)
        except ValueError:
            raise FaultRuleError(
                "INVALID_ACTION", "action", f"unknown action number {rule.action}"
            ) from None
        return cls(
            method=rule.method,
            action=action,
            pcpu=rule.pcpu if rule.HasField("pcpu") else None,
            delay=_seconds(rule.delay, "delay", MAX_DELAY_SECONDS),
            count=rule.count,
            duration=_seconds(rule.duration, "duration", MAX_DURATION_SECONDS),
            skip=rule.skip,
        )

    def to_proto(self) -> fault_pb2.FaultRule:
        rule = fault_pb2.FaultRule(
            method=self.method,
            action=self.action.value,  # type: ignore[arg-type]
            count=self.count,
            skip=self.skip,
        )
        if self.pcpu is not None:
            rule.pcpu = self.pcpu
        if self.delay:
            rule.delay.CopyFrom(_duration(self.delay))
        if self.duration:
            rule.duration.CopyFrom(_duration(self.duration))
        return rule

    def describe(self) -> str:
        where = f" on pCPU {self.pcpu}" if self.pcpu is not None else ""
        extra = f" {self.delay:g}s" if self.action is FaultAction.DELAY else ""
        return f"{self.action.label}{extra} {self.method}{where}"


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


Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]

SAL_PATH_METADATA = "x-xenmca-sal-path"
"""Call metadata naming how the coordinator reached a pCPU's SAL: "ipi" or "local".

Per-RPC fault rules stand for lost, late or failed IPIs: they never fire on a
SalService call marked "local" (the SAL call of the pCPU dom0's vCPU0 runs on),
as a local SAL procedure has no IPI to lose."""
_SAL_SERVICE_PREFIX = "/xenmca.sal.v1.SalService/"


def is_local_sal_call(details: grpc.HandlerCallDetails) -> bool:
    method = details.method
    if isinstance(method, bytes):
        method = method.decode()
    if not method.startswith(_SAL_SERVICE_PREFIX):
        return False
    return any(
        key == SAL_PATH_METADATA and value == "local"
        for key, value in (details.invocation_metadata or ())
    )


class FaultInterceptor(grpc.aio.ServerInterceptor):
    """Applies an injector's rules to the calls of one server (serving pcpu, or none)."""

    def __init__(
        self, injector: FaultInjector, pcpu: int | None = None, events: EventLog | None = None
    ) -> None:
        self.injector = injector
        self.pcpu = pcpu
        self.events = events

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        if not self.injector.has_rules:  # the fast path: no rules, no cost
            return await continuation(handler_call_details)
        if is_local_sal_call(handler_call_details):
            return await continuation(handler_call_details)
        method = handler_call_details.method
        if isinstance(method, bytes):
            method = method.decode()
        firing = self.injector.match(method, self.pcpu)
        handler = await continuation(handler_call_details)
        if firing is None or handler is None:
            return handler
        if self.events is not None:
            self.events.emit(
                "fault_fired",
                fault_id=firing.fault_id,
                method=firing.method,
                pcpu=self.pcpu,
                action=firing.action.label,
            )
        log.debug("fault %s fires: %s", firing.fault_id, firing.action.label)
        return self._wrap(handler, firing)

    # -- wrapping handlers ------------------------------------------------------

    def _wrap(self, handler: grpc.RpcMethodHandler, firing: Firing) -> grpc.RpcMethodHandler:
        error = injected_error(firing, self.pcpu)
        clock = self.injector.clock
        serializers: dict[str, Any] = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary_reply(handler.unary_unary, firing, error, clock), **serializers
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _unary_reply(handler.stream_unary, firing, error, clock), **serializers
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _stream_reply(handler.unary_stream, firing, error, clock), **serializers
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _stream_reply(handler.stream_stream, firing, error, clock), **serializers
            )
        return handler  # pragma: no cover - a handler always has one behaviour


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _unary_reply(
    behaviour: Callable[..., Any], firing: Firing, error: errors.RequestError, clock: Clock
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def faulty(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if firing.action is FaultAction.FAIL:
            await errors.abort(context, error)
        if firing.action is FaultAction.DELAY:
            await clock.sleep(firing.delay)
            return await _maybe_await(behaviour(request, context))
        await _maybe_await(behaviour(request, context))  # the server acts...
        await errors.abort(context, error)  # ...and its reply is lost

    return faulty


def _stream_reply(
    behaviour: Callable[..., Any], firing: Firing, error: errors.RequestError, clock: Clock
) -> Callable[[Any, grpc.aio.ServicerContext], Any]:
    if not inspect.isasyncgenfunction(behaviour):
        return _written_stream_reply(behaviour, firing, error, clock)

    async def faulty(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if firing.action is FaultAction.FAIL:
            await errors.abort(context, error)
        if firing.action is FaultAction.DELAY:
            await clock.sleep(firing.delay)
        async with aclosing(behaviour(request, context)) as replies:
            async for reply in replies:
                if firing.action is FaultAction.DROP_REPLY:
                    break  # the first message is produced (the server acted) and lost
                yield reply
        if firing.action is FaultAction.DROP_REPLY:
            await errors.abort(context, error)

    return faulty


class _LoseFirstWrite:
    """A servicer context whose first write() is lost and ends the call with the error."""

    def __init__(self, context: grpc.aio.ServicerContext, error: errors.RequestError) -> None:
        self._context = context
        self._error = error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def write(self, message: Any) -> None:
        await errors.abort(self._context, self._error)


def _written_stream_reply(
    behaviour: Callable[..., Any], firing: Firing, error: errors.RequestError, clock: Clock
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[None]]:
    """For stream handlers that write with context.write() rather than yield."""

    async def faulty(request: Any, context: grpc.aio.ServicerContext) -> None:
        if firing.action is FaultAction.FAIL:
            await errors.abort(context, error)
        if firing.action is FaultAction.DELAY:
            await clock.sleep(firing.delay)
            await _maybe_await(behaviour(request, context))
            return
        await _maybe_await(behaviour(request, _LoseFirstWrite(context, error)))
        await errors.abort(context, error)  # ended without a message: the end is lost

    return faulty
