"""Paced injections (issue 12 item 4): bounded rates and durations, ListInjections, CancelInjection.

A paced InjectError holds one of a pCPU's MAX_PACED_INJECTIONS slots until it ends, so
rates too slow to end in bounded time are refused; the operator can list the running
injections and cancel one. Real servers on port 0 with a fake clock where timing
matters; `xenmca inject --list/--cancel` as a real process against a real host.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cli_process import xenmca

from xenmca.pcpu import validation
from xenmca.pcpu.firmware import MAX_PACED_INJECTIONS
from xenmca.pcpu.model import LoadedState
from xenmca.pcpu.server import PcpuHost, PcpuServer, create_server
from xenmca.pcpu.store import RecordStore, StoreChange
from xenmca.record.v1 import record_pb2
from xenmca.rpc.channels import open_channel
from xenmca.rpc.clock import FakeClock
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.events import Event, EventLog
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook, call_metadata
from xenmca.sal.v1 import sal_service_pb2 as sal
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.testbed.run.workload_plan import SEVERITY_VALUES, plan_injections
from xenmca.testbed.scenario.errors import ScenarioError
from xenmca.testbed.scenario.loader import SCENARIO_DIR, load_scenario, parse_scenario_text
from xenmca.vocab import TYPES_BY_NAME

CMC = record_pb2.RECORD_TYPE_CMC
CPE = record_pb2.RECORD_TYPE_CPE
ROOT = Path(__file__).resolve().parent.parent
Metadata = tuple[tuple[str, str], ...]


@dataclass
class Pcpu:
    server: PcpuServer
    stub: sal_grpc.SalServiceStub
    events: list[Event]
    log: EventLog
    clock: FakeClock
    tokens: TokenBook

    @property
    def operator(self) -> Metadata:
        return call_metadata(self.tokens.token_for(OPERATOR))

    async def inject(
        self, count: int, rate: float, record_type: int = CMC, **fields: object
    ) -> sal.InjectErrorResponse:
        request = sal.InjectErrorRequest(
            type=record_type,  # type: ignore[arg-type]
            count=count,
            rate_per_second=rate,
            **fields,  # type: ignore[arg-type]
        )
        return await self.stub.InjectError(request, metadata=self.operator)

    async def listed(self) -> list[sal.PacedInjection]:
        reply = await self.stub.ListInjections(sal.ListInjectionsRequest(), metadata=self.operator)
        return list(reply.injections)

    async def cancel(self, injection_id: int) -> sal.PacedInjection:
        reply = await self.stub.CancelInjection(
            sal.CancelInjectionRequest(injection_id=injection_id), metadata=self.operator
        )
        return reply.injection

    async def state(self, record_type: int = CMC) -> sal.RecordTypeState:
        reply = await self.stub.DescribePcpu(sal.DescribePcpuRequest())
        return next(t for t in reply.types if t.type == record_type)

    async def until_events(self, kind: str, n: int) -> None:
        """Wait until the pCPU has emitted n events of kind."""
        reached = asyncio.Event()

        def check(_: Event | None = None) -> None:
            if sum(1 for e in self.events if e["kind"] == kind) >= n:
                reached.set()

        unsubscribe = self.log.subscribe(check)
        try:
            check()
            await asyncio.wait_for(reached.wait(), 5)
        finally:
            unsubscribe()

    def kinds(self, kind: str) -> list[Event]:
        return [e for e in self.events if e["kind"] == kind]


PcpuFactory = Callable[..., Awaitable[Pcpu]]


@pytest.fixture
async def make_pcpu() -> AsyncIterator[PcpuFactory]:
    started: list[tuple[PcpuServer, grpc.aio.Channel]] = []

    async def make(**options: object) -> Pcpu:
        events = EventLog("pcpu-test")
        seen: list[Event] = []
        events.subscribe(seen.append)
        clock = FakeClock()
        tokens = TokenBook.generate(DOM0, OPERATOR, XEN)
        server, port = create_server(
            "127.0.0.1:0",
            3,
            events=events,
            clock=clock,
            token_book=tokens,
            **options,  # type: ignore[arg-type]
        )
        await server.start()
        channel = open_channel(f"127.0.0.1:{port}")
        started.append((server, channel))
        return Pcpu(server, sal_grpc.SalServiceStub(channel), seen, events, clock, tokens)

    yield make
    for server, channel in started:
        await channel.close()
        await server.stop(None)


@pytest.fixture
async def pcpu(make_pcpu: PcpuFactory) -> Pcpu:
    return await make_pcpu()


async def refused(
    call: Awaitable[object], code: grpc.StatusCode, reason: str, field: str | None = None
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == code, raised.value.details()
    info = error_info_of(raised.value)
    assert info is not None and info.reason == reason, info
    if field is not None:
        assert info.metadata["field"] == field, info
    assert len(raised.value.details().splitlines()) == 1


# --- bounded rates and durations ------------------------------------------------------


async def test_the_slowest_rate_attack_is_refused_and_a_storm_still_starts(pcpu: Pcpu) -> None:
    before = await pcpu.stub.DescribePcpu(sal.DescribePcpuRequest())
    for _ in range(MAX_PACED_INJECTIONS):
        await refused(
            pcpu.inject(2, 1e-300),
            grpc.StatusCode.INVALID_ARGUMENT,
            "RATE_TOO_LOW",
            "rate_per_second",
        )
    assert await pcpu.stub.DescribePcpu(sal.DescribePcpuRequest()) == before
    assert pcpu.server.firmware.paced_injections == 0 and await pcpu.listed() == []

    storm = await pcpu.inject(400, 200.0)  # two seconds at 200/s
    assert storm.accepted == 400 and storm.injection_id == 1
    await pcpu.until_events("records_created", 1)
    await pcpu.clock.advance(2.0)
    await pcpu.server.firmware.wait_paced()
    state = await pcpu.state()
    assert (state.created, state.pending + state.overflowed) == (400, 400)
    (finished,) = pcpu.kinds("injection_finished")
    assert finished["injection_id"] == 1 and finished["complete"]


async def test_a_paced_injection_must_end_within_a_day(pcpu: Pcpu) -> None:
    too_long = [(86_401, 1.0), (1_000_000, 1.0), (87, 0.001), (1, 0.000999)]
    for count, rate in too_long:
        reason = "RATE_TOO_LOW" if rate < 0.001 else "INJECTION_TOO_LONG"
        field = "rate_per_second" if rate < 0.001 else "count"
        await refused(pcpu.inject(count, rate), grpc.StatusCode.INVALID_ARGUMENT, reason, field)
    assert (await pcpu.state()).created == 0 and pcpu.server.firmware.paced_injections == 0

    # Exactly a day passes: a storm of a day at 1/s, and 86 records at the slowest rate.
    day = await pcpu.inject(86_400, 1.0)
    slowest = await pcpu.inject(86, 0.001, CPE)
    assert (day.injection_id, slowest.injection_id) == (1, 2)
    assert [i.injection_id for i in await pcpu.listed()] == [1, 2]
    for injection_id in (1, 2):
        await pcpu.cancel(injection_id)
    # At the slowest rate, an injection still ends in bounded time: 3 records in 3000 s.
    few = await pcpu.inject(3, 0.001, record_pb2.RECORD_TYPE_MCA)
    await pcpu.clock.advance(2500.0)
    assert await pcpu.listed() == []
    (finished,) = pcpu.kinds("injection_finished")
    assert (finished["injection_id"], finished["created"]) == (few.injection_id, 3)
    assert finished["complete"]


@pytest.mark.parametrize(
    "path",
    [*sorted(SCENARIO_DIR.glob("*.yaml")), ROOT / "scenarios" / "soak-100k.yaml"],
    ids=lambda p: p.name,
)
def test_every_shipped_storm_passes_the_pcpus_limits(path: Path) -> None:
    for planned in plan_injections(load_scenario(path)):
        validation.injection(
            sal.InjectErrorRequest(
                type=TYPES_BY_NAME[planned.type],  # type: ignore[arg-type]
                severity=SEVERITY_VALUES[planned.severity],  # type: ignore[arg-type]
                count=planned.count,
                rate_per_second=planned.rate,
            )
        )


SCENARIO_DAY = "name: t\nseed: 1\npcpus: 2\nduration_s: 86400\n"


@pytest.mark.parametrize(
    ("storm", "message"),
    [
        ("{rate: 1e-300, duration_s: 1}", "too slow for a paced injection; at least 0.001"),
        ("{rate: 0.0009, duration_s: 86400}", "too slow for a paced injection; at least 0.001"),
        # rate * duration_s rounds up to 130 records: 86 667 s at 0.0015/s.
        ("{rate: 0.0015, duration_s: 86400}", "130 records at 0.0015/s take 86,667 s"),
    ],
)
def test_the_scenario_loader_refuses_what_the_pcpu_would(storm: str, message: str) -> None:
    text = SCENARIO_DAY + "workload: {storms: [{type: cmc, pcpus: [1], " + storm[1:] + "]}"
    with pytest.raises(ScenarioError) as raised:
        parse_scenario_text(text, "t.yaml")
    assert str(raised.value).startswith("t.yaml: workload.storms[0].rate: "), raised.value
    assert message in str(raised.value)


@pytest.mark.parametrize("storm", ["{rate: 1, duration_s: 86400}", "{rate: 0.001, duration_s: 5}"])
def test_a_storm_of_a_day_and_the_slowest_storm_load_and_validate(storm: str) -> None:
    text = SCENARIO_DAY + "workload: {storms: [{type: cmc, pcpus: [1], " + storm[1:] + "]}"
    (planned,) = plan_injections(parse_scenario_text(text, "t.yaml"))
    validation.injection(
        sal.InjectErrorRequest(type=CMC, count=planned.count, rate_per_second=planned.rate)
    )


# --- ListInjections -------------------------------------------------------------------


async def test_list_shows_running_injections_with_progress(pcpu: Pcpu) -> None:
    wall_at_start = pcpu.clock.wall()  # the firmware stamps from its (fake) clock
    first = await pcpu.inject(1000, 8.0, severity=record_pb2.SEVERITY_FATAL)
    second = await pcpu.inject(50, 4.0, CPE)
    immediate = await pcpu.inject(5, 0.0)
    assert (first.injection_id, second.injection_id, immediate.injection_id) == (1, 2, 0)
    await pcpu.until_events("records_created", 3)  # the first record of each is due at once

    listed = await pcpu.listed()
    assert [(i.injection_id, i.type, i.count, i.created, i.rate_per_second) for i in listed] == [
        (1, CMC, 1000, 1, 8.0),
        (2, CPE, 50, 1, 4.0),
    ]
    assert [i.severity for i in listed] == [
        record_pb2.SEVERITY_FATAL,
        record_pb2.SEVERITY_CORRECTED,
    ]
    for injection in listed:
        started = injection.started_at.ToNanoseconds() / 1e9
        assert started == pytest.approx(wall_at_start, abs=1e-3)

    await pcpu.clock.advance(2.0)  # 16 more at 8/s, 8 more at 4/s
    progress = {i.injection_id: (i.created, i.stored, i.overflowed) for i in await pcpu.listed()}
    assert progress == {1: (17, 17, 0), 2: (9, 9, 0)}
    assert (await pcpu.state(CMC)).created == 5 + 17 and (await pcpu.state(CPE)).created == 9

    await pcpu.clock.advance(20.0)  # the CPE one ends (50 at 4/s), the CMC one does not
    assert [i.injection_id for i in await pcpu.listed()] == [1]
    (finished,) = pcpu.kinds("injection_finished")
    assert (finished["injection_id"], finished["created"], finished["complete"]) == (2, 50, True)
    started = [e["injection_id"] for e in pcpu.kinds("injection_started")]
    assert started == [1, 2]


# --- CancelInjection ------------------------------------------------------------------


async def test_cancel_stops_one_injection_and_frees_its_slot(make_pcpu: PcpuFactory) -> None:
    pcpu = await make_pcpu(capacity=5)
    others = [await pcpu.inject(10, 0.01) for _ in range(MAX_PACED_INJECTIONS - 1)]
    target = await pcpu.inject(100, 8.0, CPE)
    await refused(
        pcpu.inject(1, 1.0), grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_PACED_INJECTIONS"
    )
    await pcpu.until_events("records_created", MAX_PACED_INJECTIONS)
    await pcpu.clock.advance(1.25)  # the CPE storm has made 11 records: 5 stored, 6 overflowed

    done = await pcpu.cancel(target.injection_id)
    assert (done.injection_id, done.type, done.count) == (target.injection_id, CPE, 100)
    assert (done.created, done.stored, done.overflowed) == (11, 5, 6)
    (cancelled,) = pcpu.kinds("injection_cancelled")
    assert cancelled["injection_id"] == target.injection_id and cancelled["created"] == 11
    assert target.injection_id not in {i.injection_id for i in await pcpu.listed()}
    assert len(await pcpu.listed()) == MAX_PACED_INJECTIONS - 1

    await pcpu.clock.advance(60.0)  # no record after the cancel
    state = await pcpu.state(CPE)
    assert (state.created, state.overflowed, state.pending) == (11, 6, 5)
    assert state.created == state.pending + state.overflowed
    ended = [e["injection_id"] for e in pcpu.kinds("injection_finished")]
    assert target.injection_id not in ended

    replacement = await pcpu.inject(1, 1.0)  # the slot is free again
    assert replacement.injection_id == MAX_PACED_INJECTIONS + 1
    await refused(
        pcpu.cancel(target.injection_id), grpc.StatusCode.NOT_FOUND, "INJECTION_NOT_FOUND"
    )
    await refused(pcpu.cancel(0), grpc.StatusCode.INVALID_ARGUMENT, "INJECTION_ID_REQUIRED")
    await refused(pcpu.cancel(10**6), grpc.StatusCode.NOT_FOUND, "INJECTION_NOT_FOUND")
    assert {o.injection_id for o in others} == {i.injection_id for i in await pcpu.listed()} - {
        replacement.injection_id
    }


class GatedBackend:
    """A durable store backend whose commits wait until the test releases them."""

    def __init__(self) -> None:
        self.committing = asyncio.Event()
        self.release = asyncio.Event()

    def load(self) -> LoadedState:
        return LoadedState()

    async def commit(self, change: StoreChange) -> None:
        self.committing.set()
        await self.release.wait()


async def test_a_cancel_waits_for_the_batch_being_committed(make_pcpu: PcpuFactory) -> None:
    backend = GatedBackend()
    pcpu = await make_pcpu(store=RecordStore(3, backend=backend))
    firmware = pcpu.server.firmware
    started = await pcpu.inject(100, 8.0)
    await backend.committing.wait()  # the first batch is being committed

    cancelling = asyncio.ensure_future(firmware.cancel_paced(started.injection_id))
    await asyncio.sleep(0)  # let it ask; it must wait for the batch
    assert not cancelling.done() and firmware.injections() == []
    backend.release.set()
    done = await cancelling
    # The batch is whole: stored, its interrupt raised, its event emitted, and counted.
    assert (done.created, done.stored) == (1, 1)
    state = await pcpu.state()
    assert (state.created, state.pending, state.interrupts_raised) == (1, 1, 1)
    kinds = [e["kind"] for e in pcpu.events if e["kind"].startswith(("records", "injection"))]
    assert kinds == ["injection_started", "records_created", "injection_cancelled"]
    await pcpu.clock.advance(10.0)
    assert (await pcpu.state()).created == 1


async def test_only_the_operator_lists_and_cancels(pcpu: Pcpu) -> None:
    started = await pcpu.inject(10, 1.0)
    for identity in (DOM0, XEN, None):
        metadata = call_metadata(pcpu.tokens.token_for(identity) if identity else None)
        code = grpc.StatusCode.PERMISSION_DENIED if identity else grpc.StatusCode.UNAUTHENTICATED
        for call in (
            pcpu.stub.ListInjections(sal.ListInjectionsRequest(), metadata=metadata),
            pcpu.stub.CancelInjection(
                sal.CancelInjectionRequest(injection_id=started.injection_id), metadata=metadata
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call
            assert raised.value.code() == code
            assert error_info_of(raised.value) is not None
    assert [i.injection_id for i in await pcpu.listed()] == [started.injection_id]


# --- xenmca inject --list / --cancel ----------------------------------------------------


@dataclass
class Host:
    host: PcpuHost
    common: tuple[str, ...]


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    tokens = TokenBook.generate(DOM0, OPERATOR, XEN)
    token_file = tmp_path / "tokens.json"
    tokens.save(token_file)
    pcpus = PcpuHost([0], token_book=tokens)
    await pcpus.start()
    try:
        yield Host(pcpus, ("--pcpu", pcpus.addresses[0], "--token-file", str(token_file)))
    finally:
        await pcpus.stop(grace=None)


async def test_cli_lists_and_cancels(host: Host) -> None:
    started = await xenmca(
        "inject", *host.common, "--type", "cpe", "--count", "1000", "--rate", "0.5"
    )
    assert (started.code, started.out.strip()) == (
        0,
        "accepted 1000, paced at 0.5/s as injection 1",
    ), started.err

    listed = await xenmca("inject", *host.common, "--list", "--json")
    assert listed.code == 0, listed.err
    (entry,) = json.loads(listed.out)
    assert {k: entry[k] for k in ("injection_id", "type", "severity", "count")} == {
        "injection_id": 1,
        "type": "CPE",
        "severity": "CORRECTED",
        "count": 1000,
    }
    assert entry["created"] >= 1 and entry["rate_per_second"] == 0.5
    assert entry["created"] == entry["stored"] + entry["overflowed"]
    table = await xenmca("inject", *host.common, "--list")
    header, row = table.out.splitlines()
    assert header.split() == ["ID", "TYPE", "SEVERITY", "RATE/S", "CREATED", "COUNT", "STARTED"]
    assert row.split()[:4] == ["1", "CPE", "CORRECTED", "0.5"]

    cancelled = await xenmca("inject", *host.common, "--cancel", "1")
    assert cancelled.code == 0, cancelled.err
    assert cancelled.out.startswith("cancelled injection 1: created ")
    assert host.host.servers[0].firmware.injections() == []
    empty = await xenmca("inject", *host.common, "--list")
    assert (empty.code, empty.out.strip()) == (0, "no paced injections")

    again = await xenmca("inject", *host.common, "--cancel", "1")
    assert again.code == 2 and len(again.err.strip().splitlines()) == 1
    assert "NOT_FOUND [INJECTION_NOT_FOUND]" in again.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--list", "--type", "cmc"), "--list does not take --type"),
        (("--cancel", "2", "--rate", "5"), "--cancel does not take --rate"),
        (("--list", "--cancel", "1"), "not allowed with argument"),
        (("--cancel", "0"), "injection ids are 1 or more"),
        (("--cancel", "x"), "not an injection id"),
        ((), "--type is required"),
        (("--type", "cmc", "--count", "5", "--rate", "1e-300"), "[RATE_TOO_LOW]"),
        (("--type", "cmc", "--count", "100000", "--rate", "1"), "[INJECTION_TOO_LONG]"),
    ],
)
async def test_cli_bad_input_is_one_line_and_exit_2(
    host: Host, args: tuple[str, ...], message: str
) -> None:
    result = await xenmca("inject", *host.common, *args)
    assert result.code == 2, result
    assert len(result.err.strip().splitlines()) == 1 and message in result.err, result.err
    assert host.host.servers[0].firmware.paced_injections == 0
