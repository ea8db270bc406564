"""A server's one generic handler (xenmca.rpc.dispatch): wrappers built once per method,
unknown methods not kept, fault rules still asked on every call."""

from __future__ import annotations

from typing import NamedTuple

import grpc
from faults_helpers import CLEAR

from xenmca.rpc.clock import FakeClock
from xenmca.rpc.dispatch import ServerHandlers
from xenmca.rpc.fault_rules import FaultAction, FaultSpec
from xenmca.rpc.fault_wrap import FaultWrapper
from xenmca.rpc.faults import FaultInjector
from xenmca.rpc.stream_limit import StreamLimit


class CallDetails(NamedTuple):
    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


class CountingHandlers(grpc.GenericRpcHandler):
    """Serves one method and counts how often it is asked about any."""

    def __init__(self, method: str, handler: grpc.RpcMethodHandler) -> None:
        self.method = method
        self.handler = handler
        self.asked: list[str] = []

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        self.asked.append(handler_call_details.method)
        return self.handler if handler_call_details.method == self.method else None


def _unary() -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        lambda request, context: request, request_deserializer=bytes
    )


def test_a_method_is_looked_up_and_wrapped_once() -> None:
    inner = CountingHandlers("/" + CLEAR, _unary())
    handlers = ServerHandlers([inner], StreamLimit())
    first = handlers.service(CallDetails("/" + CLEAR, ()))
    assert first is not None and first is not inner.handler  # wrapped (undecodable refusal)
    assert first.request_deserializer is not bytes
    assert handlers.service(CallDetails("/" + CLEAR, ())) is first
    assert inner.asked == ["/" + CLEAR]


def test_an_unknown_method_is_not_kept() -> None:
    inner = CountingHandlers("/" + CLEAR, _unary())
    handlers = ServerHandlers([inner], StreamLimit())
    for _ in range(3):
        assert handlers.service(CallDetails("/made.Up/Name", ())) is None
    assert inner.asked == ["/made.Up/Name"] * 3


def test_a_rule_added_after_the_first_call_still_fires() -> None:
    injector = FaultInjector(FakeClock())
    inner = CountingHandlers("/" + CLEAR, _unary())
    handlers = ServerHandlers([inner], StreamLimit(), FaultWrapper(injector, pcpu=0))
    kept = handlers.service(CallDetails("/" + CLEAR, ()))
    injector.add(FaultSpec(CLEAR, FaultAction.FAIL, count=1))
    faulty = handlers.service(CallDetails("/" + CLEAR, ()))
    assert faulty is not None and faulty is not kept
    assert injector.list()[0].matched == 1
    # The rule fired its one time and is gone: the kept handler again.
    assert handlers.service(CallDetails("/" + CLEAR, ())) is kept
