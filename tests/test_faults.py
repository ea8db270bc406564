"""Per-RPC fault injection: rules (on a FakeClock), the interceptor, FaultService, real servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import grpc
import pytest
from flow_harness import CMC, EventWatch
from google.protobuf import duration_pb2

from xenmca.fault.v1 import fault_service_pb2 as fault_pb2
from xenmca.fault.v1 import fault_service_pb2_grpc as fault_grpc
from xenmca.pcpu.server import PcpuHost, create_server
from xenmca.rpc.channels import open_channel
from xenmca.rpc.clock import FakeClock
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.events import EventLog
from xenmca.rpc.fault_interceptor import FaultInterceptor
from xenmca.rpc.fault_rules import (
    INJECTED_FAULT,
    FaultAction,
    FaultRuleError,
    FaultSpec,
    normalise_method,
)
from xenmca.rpc.faults import FaultInjector
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook, call_metadata
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

CLEAR = "xenmca.sal.v1.SalService/ClearStateInfo"
DESCRIBE = "xenmca.sal.v1.SalService/DescribePcpu"
SIZE = "xenmca.sal.v1.SalService/GetStateInfoSize"
WATCH = "xenmca.sal.v1.SalService/WatchInterrupts"


# -- the rules on their own --------------------------------------------------------


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


async def test_no_rules_means_the_handler_is_not_wrapped() -> None:
    injector = FaultInjector(FakeClock())
    interceptor = FaultInterceptor(injector, pcpu=0)
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
    calls = []

    async def continuation(details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        calls.append(details)
        return handler

    details = CallDetails("/" + CLEAR, ())
    assert await interceptor.intercept_service(continuation, details) is handler
    injector.add(FaultSpec(DESCRIBE, FaultAction.FAIL))  # another method: still untouched
    assert await interceptor.intercept_service(continuation, details) is handler
    assert injector.list()[0].matched == 0
    injector.add(FaultSpec(CLEAR, FaultAction.FAIL))
    assert await interceptor.intercept_service(continuation, details) is not handler
    assert len(calls) == 3


class SignallingClock(FakeClock):
    """A FakeClock that tells the test when something starts sleeping on it."""

    def __init__(self) -> None:
        super().__init__()
        self.slept = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.slept.set()
        await super().sleep(seconds)


# -- real pCPU servers --------------------------------------------------------------


@dataclass
class Host:
    host: PcpuHost
    tokens: TokenBook
    clock: SignallingClock
    watch: EventWatch
    channels: dict[int, grpc.aio.Channel]

    def md(self, identity: str | None) -> tuple[tuple[str, str], ...]:
        return call_metadata(self.tokens.token_for(identity) if identity else None)

    def channel(self, pcpu: int) -> grpc.aio.Channel:
        if pcpu not in self.channels:
            self.channels[pcpu] = open_channel(self.host.addresses[pcpu])
        return self.channels[pcpu]

    def sal(self, pcpu: int) -> sal_grpc.SalServiceStub:
        return sal_grpc.SalServiceStub(self.channel(pcpu))

    def faults(self, pcpu: int = 0) -> fault_grpc.FaultServiceStub:
        return fault_grpc.FaultServiceStub(self.channel(pcpu))

    async def add(self, via: int = 0, **rule: object) -> str:
        """Add a rule through pCPU via's FaultService (all of the host's servers share it)."""
        reply = await self.faults(via).AddFault(
            fault_pb2.AddFaultRequest(rule=fault_pb2.FaultRule(**rule)),  # type: ignore[arg-type]
            metadata=self.md(OPERATOR),
        )
        return str(reply.fault_id)

    async def inject(self, pcpu: int, count: int = 1) -> sal_pb2.InjectErrorResponse:
        return await self.sal(pcpu).InjectError(
            sal_pb2.InjectErrorRequest(type=CMC, count=count), metadata=self.md(OPERATOR)
        )

    async def cmc(self, pcpu: int) -> sal_pb2.RecordTypeState:
        state = await self.sal(pcpu).DescribePcpu(sal_pb2.DescribePcpuRequest())
        return next(t for t in state.types if t.type == CMC)


@pytest.fixture
async def pcpus() -> AsyncIterator[Host]:
    tokens = TokenBook.generate(DOM0, OPERATOR, XEN)
    clock = SignallingClock()
    events = EventLog("pcpu")
    watch = EventWatch()
    events.subscribe(watch)
    host = PcpuHost([0, 1], token_book=tokens, events=events, faults=FaultInjector(clock))
    await host.start()
    bed = Host(host, tokens, clock, watch, {})
    try:
        yield bed
    finally:
        for channel in bed.channels.values():
            await channel.close()
        await host.stop(grace=None)


def injected(exc: grpc.aio.AioRpcError) -> dict[str, str]:
    assert exc.code() == grpc.StatusCode.UNAVAILABLE
    info = error_info_of(exc)
    assert info is not None and info.reason == INJECTED_FAULT
    return dict(info.metadata)


async def test_drop_reply_acts_then_loses_the_reply(pcpus: Host) -> None:
    # Added through pCPU 0's FaultService, for pCPU 1: the host shares one injector.
    fault_id = await pcpus.add(
        via=0,
        method="SalService.ClearStateInfo",
        pcpu=1,
        action=fault_pb2.FAULT_ACTION_DROP_REPLY,
        count=1,
    )
    first = (await pcpus.inject(1, count=2)).first_record_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pcpus.sal(1).ClearStateInfo(
            sal_pb2.ClearStateInfoRequest(type=CMC, record_id=first), metadata=pcpus.md(XEN)
        )
    assert injected(caught.value) == {
        "fault_id": fault_id,
        "action": "drop-reply",
        "method": CLEAR,
        "pcpu": "1",
    }
    state = await pcpus.cmc(1)
    assert (state.pending, state.cleared, state.oldest_record_id) == (1, 1, first + 1)
    # The retry by record id is harmless: already cleared, nothing else touched.
    again = await pcpus.sal(1).ClearStateInfo(
        sal_pb2.ClearStateInfoRequest(type=CMC, record_id=first), metadata=pcpus.md(XEN)
    )
    assert again.already_cleared and again.remaining == 1
    assert pcpus.watch.matching("fault_fired") == [
        {
            **pcpus.watch.matching("fault_fired")[0],
            "fault_id": fault_id,
            "method": CLEAR,
            "pcpu": 1,
            "action": "drop-reply",
        }
    ]


async def test_fail_answers_without_acting(pcpus: Host) -> None:
    await pcpus.add(method="SalService.ClearStateInfo", action=fault_pb2.FAULT_ACTION_FAIL)
    first = (await pcpus.inject(0)).first_record_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pcpus.sal(0).ClearStateInfo(
            sal_pb2.ClearStateInfoRequest(type=CMC, record_id=first), metadata=pcpus.md(XEN)
        )
    assert injected(caught.value)["action"] == "fail"
    state = await pcpus.cmc(0)
    assert (state.pending, state.cleared) == (1, 0)


async def test_pcpu_filter_leaves_other_pcpus_alone(pcpus: Host) -> None:
    await pcpus.add(method=DESCRIBE, pcpu=1, action=fault_pb2.FAULT_ACTION_FAIL)
    assert (await pcpus.cmc(0)).pending == 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pcpus.cmc(1)
    assert injected(caught.value)["pcpu"] == "1"
    (listed,) = (
        await pcpus.faults(1).ListFaults(fault_pb2.ListFaultsRequest(), metadata=pcpus.md(OPERATOR))
    ).faults
    assert (listed.matched, listed.fired, listed.expired) == (1, 1, False)
    assert [e["pcpu"] for e in pcpus.watch.matching("fault_fired")] == [1]


async def test_count_is_exhausted_then_calls_pass(pcpus: Host) -> None:
    await pcpus.add(method=DESCRIBE, action=fault_pb2.FAULT_ACTION_FAIL, count=2)
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError):
            await pcpus.cmc(0)
    assert (await pcpus.cmc(1)).pending == 0
    assert (await pcpus.cmc(0)).pending == 0
    listed = await pcpus.faults().ListFaults(
        fault_pb2.ListFaultsRequest(), metadata=pcpus.md(OPERATOR)
    )
    assert [(f.fired, f.expired) for f in listed.faults] == [(2, True)]


async def test_duration_window_ends_on_the_hosts_clock(pcpus: Host) -> None:
    await pcpus.add(
        method=DESCRIBE,
        action=fault_pb2.FAULT_ACTION_FAIL,
        duration=duration_pb2.Duration(seconds=30),
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await pcpus.cmc(0)
    await pcpus.clock.advance(30)
    assert (await pcpus.cmc(0)).pending == 0


async def wait_for_sleeper(clock: SignallingClock) -> None:
    async with asyncio.timeout(10):
        await clock.slept.wait()


async def test_delay_holds_the_call_until_the_delay_has_passed(pcpus: Host) -> None:
    await pcpus.add(
        method=SIZE,
        action=fault_pb2.FAULT_ACTION_DELAY,
        delay=duration_pb2.Duration(seconds=2),
        count=1,
    )
    call = asyncio.ensure_future(
        pcpus.sal(0).GetStateInfoSize(sal_pb2.GetStateInfoSizeRequest(type=CMC))
    )
    await pcpus.watch.wait_for("fault_fired", action="delay")
    await wait_for_sleeper(pcpus.clock)
    await pcpus.clock.advance(1.9)
    assert not call.done()
    await pcpus.clock.advance(0.1)
    reply = await call
    assert reply.sal_status == 0 and reply.size > 0


async def test_stream_fail_ends_it_at_the_start(pcpus: Host) -> None:
    await pcpus.add(method=WATCH, pcpu=0, action=fault_pb2.FAULT_ACTION_FAIL)
    call = pcpus.sal(0).WatchInterrupts(sal_pb2.WatchInterruptsRequest())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert injected(caught.value)["action"] == "fail"


async def test_stream_drop_reply_loses_the_first_message_and_ends(pcpus: Host) -> None:
    await pcpus.add(method=WATCH, action=fault_pb2.FAULT_ACTION_DROP_REPLY, count=1)
    # Only the coordinator ("xen") may watch a pCPU (issue 12).
    dropped = pcpus.sal(0).WatchInterrupts(sal_pb2.WatchInterruptsRequest(), metadata=pcpus.md(XEN))
    await dropped.initial_metadata()  # subscribed: the stream has started
    intact = pcpus.sal(0).WatchInterrupts(sal_pb2.WatchInterruptsRequest(), metadata=pcpus.md(XEN))
    await intact.initial_metadata()
    first = (await pcpus.inject(0)).first_record_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await dropped.read()
    assert injected(caught.value)["action"] == "drop-reply"
    assert (await intact.read()).record_id == first
    intact.cancel()


async def test_stream_delay_delays_the_start(pcpus: Host) -> None:
    await pcpus.add(
        method=WATCH, action=fault_pb2.FAULT_ACTION_DELAY, delay=duration_pb2.Duration(seconds=5)
    )
    call = pcpus.sal(0).WatchInterrupts(sal_pb2.WatchInterruptsRequest(), metadata=pcpus.md(XEN))
    metadata = asyncio.ensure_future(call.initial_metadata())
    await wait_for_sleeper(pcpus.clock)
    assert not metadata.done()
    await pcpus.clock.advance(5)
    await metadata
    first = (await pcpus.inject(0)).first_record_id
    assert (await call.read()).record_id == first
    call.cancel()


# -- FaultService: who may call it, and what it refuses --------------------------------


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
