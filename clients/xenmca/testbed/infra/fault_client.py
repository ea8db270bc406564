"""Talking to a process's FaultService: add, clear and list per-RPC fault rules.

Rules are given as plain dicts (what scenario files and the command line hold):

    {"method": "SalService.ClearStateInfo", "action": "drop-reply", "pcpu": 1,
     "count": 1, "skip": 0, "delay": 0.0, "duration": 0.0}

``method`` and ``action`` are required; ``delay`` and ``duration`` are seconds.
Calls present the operator's token through ``metadata`` (see
``xenmca.rpc.identity.call_metadata``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from google.protobuf import duration_pb2

from xenmca.fault.v1 import fault_service_pb2 as fault_pb2
from xenmca.fault.v1 import fault_service_pb2_grpc as fault_grpc
from xenmca.rpc.channels import open_channel
from xenmca.rpc.fault_rules import FaultAction, FaultRuleError, FaultSpec

Metadata = Sequence[tuple[str, str]]
DEFAULT_TIMEOUT = 10.0
RULE_KEYS = ("method", "action", "pcpu", "delay", "count", "skip", "duration")


def rule_from_dict(rule: Mapping[str, Any]) -> fault_pb2.FaultRule:
    """A validated FaultRule from a dict; raises ValueError naming the bad key."""
    unknown = sorted(set(rule) - set(RULE_KEYS))
    if unknown:
        raise ValueError(f"unknown fault rule key {unknown[0]!r} (known: {', '.join(RULE_KEYS)})")
    for key in ("method", "action"):
        if not isinstance(rule.get(key), str):
            raise ValueError(f"fault rule needs {key!r} as a string")
    pcpu = rule.get("pcpu")
    if pcpu is not None and not _is_int(pcpu):
        raise ValueError(f"fault rule 'pcpu' must be an integer (got {pcpu!r})")
    counts = {}
    for key in ("count", "skip"):
        value = rule.get(key, 0)
        if not _is_int(value):
            raise ValueError(f"fault rule {key!r} must be an integer (got {value!r})")
        counts[key] = value
    seconds = {}
    for key in ("delay", "duration"):
        value = rule.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"fault rule {key!r} must be a number of seconds (got {value!r})")
        seconds[key] = float(value)
    try:
        spec = FaultSpec(
            method=rule["method"],
            action=FaultAction.parse(rule["action"]),
            pcpu=pcpu,
            delay=seconds["delay"],
            count=counts["count"],
            duration=seconds["duration"],
            skip=counts["skip"],
        )
    except FaultRuleError as exc:
        raise ValueError(f"fault rule {exc.field!r}: {exc}") from None
    return spec.to_proto()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seconds(value: duration_pb2.Duration) -> float:
    return value.seconds + value.nanos / 1e9


def fault_to_dict(fault: fault_pb2.ActiveFault) -> dict[str, Any]:
    """One listed rule as a plain dict (JSON-ready), in the rule-dict spelling."""
    rule = fault.rule
    return {
        "fault_id": fault.fault_id,
        "method": rule.method,
        "pcpu": rule.pcpu if rule.HasField("pcpu") else None,
        "action": FaultAction(rule.action).label,
        "delay": _seconds(rule.delay),
        "count": rule.count,
        "skip": rule.skip,
        "duration": _seconds(rule.duration),
        "matched": fault.matched,
        "fired": fault.fired,
        "expired": fault.expired,
    }


async def add_fault(
    address: str,
    rule: Mapping[str, Any] | fault_pb2.FaultRule,
    metadata: Metadata = (),
    *,
    call_timeout: float = DEFAULT_TIMEOUT,
    credentials: grpc.ChannelCredentials | None = None,
) -> str:
    """Add a rule in the process at address; returns its fault id.

    Raises ValueError for a bad rule dict (before any call) and
    grpc.aio.AioRpcError when the process refuses or cannot be reached.
    """
    message = rule if isinstance(rule, fault_pb2.FaultRule) else rule_from_dict(rule)
    async with open_channel(address, credentials) as channel:
        reply = await fault_grpc.FaultServiceStub(channel).AddFault(
            fault_pb2.AddFaultRequest(rule=message), timeout=call_timeout, metadata=metadata
        )
    return str(reply.fault_id)


async def clear_faults(
    address: str,
    metadata: Metadata = (),
    fault_id: str | None = None,
    *,
    call_timeout: float = DEFAULT_TIMEOUT,
    credentials: grpc.ChannelCredentials | None = None,
) -> int:
    """Remove one rule (fault_id) or all of them; returns how many were removed."""
    request = fault_pb2.ClearFaultsRequest()
    if fault_id is not None:
        request.fault_id = fault_id
    async with open_channel(address, credentials) as channel:
        reply = await fault_grpc.FaultServiceStub(channel).ClearFaults(
            request, timeout=call_timeout, metadata=metadata
        )
    return int(reply.cleared)


async def list_faults(
    address: str,
    metadata: Metadata = (),
    *,
    call_timeout: float = DEFAULT_TIMEOUT,
    credentials: grpc.ChannelCredentials | None = None,
) -> list[dict[str, Any]]:
    """Every rule of the process at address, oldest first, as dicts (see fault_to_dict)."""
    async with open_channel(address, credentials) as channel:
        reply = await fault_grpc.FaultServiceStub(channel).ListFaults(
            fault_pb2.ListFaultsRequest(), timeout=call_timeout, metadata=metadata
        )
    return [fault_to_dict(fault) for fault in reply.faults]
