"""Per-RPC fault rules on their own (on a FakeClock), and the fault wrapper with no rules."""

from __future__ import annotations

from typing import NamedTuple

import grpc
import pytest
from faults_helpers import (
    CLEAR,
    DESCRIBE,
)

from xenmca.rpc.clock import FakeClock
from xenmca.rpc.fault_rules import (
    FaultAction,
    FaultRuleError,
    FaultSpec,
    normalise_method,
)
from xenmca.rpc.fault_wrap import FaultWrapper
from xenmca.rpc.faults import FaultInjector


@pytest.mark.parametrize(
    "name",
    [
        "xenmca.sal.v1.SalService/ClearStateInfo",
        "/xenmca.sal.v1.SalService/ClearStateInfo",
        "xenmca.sal.v1.SalService.ClearStateInfo",
        "SalService/ClearStateInfo",
        "SalService.ClearStateInfo",
        "  SalService.ClearStateInfo ",
    ],
)
def test_method_names_are_normalised(name: str) -> None:
    assert normalise_method(name) == CLEAR


@pytest.mark.parametrize(
    "name",
    ["", "ClearStateInfo", "SalService.clearstateinfo", "SalService.Nope", "Health/Check", "x.y/z"],
)
def test_unknown_methods_are_refused(name: str) -> None:
    with pytest.raises(FaultRuleError) as caught:
        normalise_method(name)
    assert caught.value.reason == "UNKNOWN_METHOD" and caught.value.field == "method"


def test_hypervisor_and_fault_service_methods_are_known() -> None:
    assert (
        normalise_method("HypervisorService.AttachDom0")
        == "xenmca.hypervisor.v1.HypervisorService/AttachDom0"
    )
    assert normalise_method("FaultService/ListFaults") == "xenmca.fault.v1.FaultService/ListFaults"


def test_fail_first_n_is_skip_zero_count_n() -> None:
    injector = FaultInjector(FakeClock())
    fault_id = injector.add(FaultSpec(CLEAR, FaultAction.FAIL, count=2))
    fired = [injector.match("/" + CLEAR, 0) for _ in range(4)]
    assert [f.fault_id if f else None for f in fired] == [fault_id, fault_id, None, None]
    (state,) = injector.list()
    assert (state.matched, state.fired, state.expired) == (2, 2, True)


def test_skip_lets_the_first_calls_through() -> None:
    injector = FaultInjector(FakeClock())
    injector.add(FaultSpec(CLEAR, FaultAction.DROP_REPLY, skip=2, count=1))
    assert [injector.match(CLEAR, None) is not None for _ in range(4)] == [
        False,
        False,
        True,
        False,
    ]
    (state,) = injector.list()
    assert (state.matched, state.fired, state.expired) == (3, 1, True)


async def test_duration_expires_on_the_injectors_clock() -> None:
    clock = FakeClock()
    injector = FaultInjector(clock)
    injector.add(FaultSpec(CLEAR, FaultAction.FAIL, duration=5.0))
    assert injector.match(CLEAR, 0) is not None
    await clock.advance(4.999)
    assert injector.match(CLEAR, 0) is not None
    assert not injector.list()[0].expired
    await clock.advance(0.001)
    assert injector.match(CLEAR, 0) is None
    (state,) = injector.list()
    assert state.expired and state.fired == 2


def test_pcpu_filter_and_method_filter() -> None:
    injector = FaultInjector(FakeClock())
    injector.add(FaultSpec("SalService.ClearStateInfo", FaultAction.FAIL, pcpu=1))
    assert injector.match(CLEAR, 0) is None
    assert injector.match(CLEAR, None) is None
    assert injector.match(DESCRIBE, 1) is None
    firing = injector.match(CLEAR, 1)
    assert firing is not None and firing.action is FaultAction.FAIL


def test_first_rule_that_fires_takes_the_call() -> None:
    injector = FaultInjector(FakeClock())
    first = injector.add(FaultSpec(CLEAR, FaultAction.FAIL, count=1))
    second = injector.add(FaultSpec(CLEAR, FaultAction.DELAY, delay=0.5))
    fired = [injector.match(CLEAR, 0) for _ in range(3)]
    assert [f.fault_id for f in fired if f] == [first, second, second]
    assert [s.matched for s in injector.list()] == [1, 2]


def test_clear_one_or_all() -> None:
    injector = FaultInjector(FakeClock())
    ids = [injector.add(FaultSpec(CLEAR, FaultAction.FAIL)) for _ in range(3)]
    assert len(set(ids)) == 3
    assert injector.clear(ids[1]) == 1
    assert injector.clear(ids[1]) == 0  # already gone: harmless
    assert [s.fault_id for s in injector.list()] == [ids[0], ids[2]]
    assert injector.clear() == 2
    assert not injector.has_rules and injector.match(CLEAR, 0) is None


@pytest.mark.parametrize(
    ("kwargs", "reason", "field"),
    [
        ({"action": FaultAction.DELAY}, "MISSING_DELAY", "delay"),
        ({"action": FaultAction.FAIL, "delay": 1.0}, "UNEXPECTED_DELAY", "delay"),
        ({"action": FaultAction.DELAY, "delay": -1.0}, "INVALID_DURATION", "delay"),
        ({"action": FaultAction.DELAY, "delay": 301.0}, "INVALID_DURATION", "delay"),
        ({"action": FaultAction.FAIL, "duration": float("nan")}, "INVALID_DURATION", "duration"),
        ({"action": FaultAction.FAIL, "count": -1}, "INVALID_COUNT", "count"),
        ({"action": "explode"}, "INVALID_ACTION", "action"),
        ({"action": 0}, "INVALID_ACTION", "action"),
    ],
)
def test_bad_specs_name_the_field(kwargs: dict[str, object], reason: str, field: str) -> None:
    with pytest.raises(FaultRuleError) as caught:
        FaultSpec(CLEAR, **kwargs)  # type: ignore[arg-type]
    assert (caught.value.reason, caught.value.field) == (reason, field)


def test_spec_round_trips_through_the_proto() -> None:
    spec = FaultSpec(
        "SalService.ClearStateInfo", FaultAction.DELAY, pcpu=3, delay=0.25, count=4, skip=1
    )
    assert FaultSpec.from_proto(spec.to_proto()) == spec
    assert spec.to_proto().method == CLEAR


class CallDetails(NamedTuple):
    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


def test_no_rules_means_the_handler_is_not_wrapped() -> None:
    injector = FaultInjector(FakeClock())
    wrapper = FaultWrapper(injector, pcpu=0)
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
    details = CallDetails("/" + CLEAR, ())
    assert wrapper.apply(handler, details) is handler
    injector.add(FaultSpec(DESCRIBE, FaultAction.FAIL))  # another method: still untouched
    assert wrapper.apply(handler, details) is handler
    assert injector.list()[0].matched == 0
    injector.add(FaultSpec(CLEAR, FaultAction.FAIL))
    assert wrapper.apply(handler, details) is not handler
    assert wrapper.apply(None, details) is None  # an unknown method stays unknown
