"""Per-RPC fault rules as a process receives them: the actions, the methods a rule may name, and the
validated rule (``FaultSpec``) with its limits.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from google.protobuf import duration_pb2

from xenmca.fault.v1 import fault_service_pb2 as fault_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.rpc import errors
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2

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
