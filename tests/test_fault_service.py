"""FaultService: who may call it, what it refuses, rules on itself, and reflection."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from faults_helpers import (
    DESCRIBE,
    Host,
    injected,
)
from faults_helpers import pcpus as pcpus
from google.protobuf import duration_pb2

from xenmca.fault.v1 import fault_service_pb2 as fault_pb2
from xenmca.fault.v1 import fault_service_pb2_grpc as fault_grpc
from xenmca.pcpu.server import create_server
from xenmca.rpc.channels import open_channel
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, call_metadata


@pytest.mark.parametrize(
    ("identity", "token", "code", "reason"),
    [
        (DOM0, None, grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_NOT_ALLOWED"),
        (XEN, None, grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_NOT_ALLOWED"),
        (None, None, grpc.StatusCode.UNAUTHENTICATED, "MISSING_CREDENTIALS"),
        (None, "not-a-known-token", grpc.StatusCode.UNAUTHENTICATED, "INVALID_TOKEN"),
    ],
)
async def test_only_the_operator_may_control_faults(
    pcpus: Host, identity: str | None, token: str | None, code: grpc.StatusCode, reason: str
) -> None:
    metadata = call_metadata(token) if token else pcpus.md(identity)
    stub = pcpus.faults()
    rule = fault_pb2.FaultRule(method=DESCRIBE, action=fault_pb2.FAULT_ACTION_FAIL)
    calls = [
        stub.AddFault(fault_pb2.AddFaultRequest(rule=rule), metadata=metadata),
        stub.ListFaults(fault_pb2.ListFaultsRequest(), metadata=metadata),
        stub.ClearFaults(fault_pb2.ClearFaultsRequest(), metadata=metadata),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == code
        info = error_info_of(caught.value)
        assert info is not None and info.reason == reason
    assert pcpus.host.faults.list() == ()
    # The operator's token works on every call.
    fault_id = await pcpus.add(method=DESCRIBE, action=fault_pb2.FAULT_ACTION_FAIL)
    cleared = await stub.ClearFaults(
        fault_pb2.ClearFaultsRequest(fault_id=fault_id), metadata=pcpus.md(OPERATOR)
    )
    assert cleared.cleared == 1


def _d(seconds: int, nanos: int = 0) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


@pytest.mark.parametrize(
    ("rule", "reason", "field"),
    [
        ({"method": "SalService.Explode", "action": 3}, "UNKNOWN_METHOD", "method"),
        ({"method": "", "action": 3}, "UNKNOWN_METHOD", "method"),
        ({"method": "grpc.health.v1.Health/Check", "action": 3}, "UNKNOWN_METHOD", "method"),
        ({"method": DESCRIBE}, "INVALID_ACTION", "action"),
        ({"method": DESCRIBE, "action": 42}, "INVALID_ACTION", "action"),
        ({"method": DESCRIBE, "action": 2}, "MISSING_DELAY", "delay"),
        ({"method": DESCRIBE, "action": 2, "delay": _d(-1)}, "INVALID_DURATION", "delay"),
        ({"method": DESCRIBE, "action": 2, "delay": _d(86_400)}, "INVALID_DURATION", "delay"),
        ({"method": DESCRIBE, "action": 2, "delay": _d(1, -5)}, "INVALID_DURATION", "delay"),
        ({"method": DESCRIBE, "action": 3, "delay": _d(1)}, "UNEXPECTED_DELAY", "delay"),
        ({"method": DESCRIBE, "action": 3, "duration": _d(-5)}, "INVALID_DURATION", "duration"),
        (
            {"method": DESCRIBE, "action": 3, "duration": _d(10**9)},
            "INVALID_DURATION",
            "duration",
        ),
        ({"method": DESCRIBE, "action": 3, "pcpu": 7}, "UNKNOWN_PCPU", "pcpu"),
        (
            {"method": "HypervisorService.GetStateInfo", "action": 3},
            "METHOD_NOT_SERVED",
            "method",
        ),
    ],
)
async def test_bad_rules_are_refused_and_nothing_is_added(
    pcpus: Host, rule: dict[str, Any], reason: str, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pcpus.add(**rule)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info_of(caught.value)
    assert info is not None and (info.reason, info.metadata["field"]) == (reason, field)
    assert pcpus.host.faults.list() == ()


async def test_add_fault_without_a_rule_is_invalid(pcpus: Host) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pcpus.faults().AddFault(fault_pb2.AddFaultRequest(), metadata=pcpus.md(OPERATOR))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info_of(caught.value)
    assert info is not None and info.reason == "MISSING_RULE"


async def test_rules_on_fault_service_itself_apply(pcpus: Host) -> None:
    await pcpus.add(method="FaultService.ListFaults", action=fault_pb2.FAULT_ACTION_FAIL, count=1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pcpus.faults().ListFaults(fault_pb2.ListFaultsRequest(), metadata=pcpus.md(OPERATOR))
    injected(caught.value)
    listed = await pcpus.faults().ListFaults(
        fault_pb2.ListFaultsRequest(), metadata=pcpus.md(OPERATOR)
    )
    assert [f.rule.method for f in listed.faults] == ["xenmca.fault.v1.FaultService/ListFaults"]


async def test_without_a_token_book_anyone_may_and_reflection_lists_it() -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    server, port = create_server("127.0.0.1:0", 4)
    await server.start()
    try:
        async with open_channel(f"127.0.0.1:{port}") as channel:
            stub = fault_grpc.FaultServiceStub(channel)
            added = await stub.AddFault(
                fault_pb2.AddFaultRequest(
                    rule=fault_pb2.FaultRule(
                        method=DESCRIBE, pcpu=4, action=fault_pb2.FAULT_ACTION_FAIL
                    )
                )
            )
            assert added.fault_id
            assert server.faults is not None and len(server.faults.list()) == 1
            reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
            answers = reflect.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
            names = [s.name async for a in answers for s in a.list_services_response.service]
            assert "xenmca.fault.v1.FaultService" in names
    finally:
        await server.stop(grace=None)
