"""Plain SAL mode (what real SAL offers) beside extended mode, and DescribePcpu's pending ids.

Real in-process servers on port 0, with and without identities; `xenmca serve
pcpu --sal` parsed, refused and run as a real process.
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from xenmca.cli import build_parser
from xenmca.cli import main as xenmca_main
from xenmca.pcpu.firmware import PcpuFirmware
from xenmca.pcpu.model import MAX_PENDING_IDS_LIMIT, SalMode
from xenmca.pcpu.server import PcpuHost, PcpuServer, create_server
from xenmca.pcpu.store import RecordStore
from xenmca.record.v1 import record_pb2
from xenmca.rpc.channels import open_channel
from xenmca.rpc.clock import FakeClock
from xenmca.rpc.errors import RequestError, error_info_of
from xenmca.rpc.events import Event, EventLog
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook, call_metadata
from xenmca.sal.v1 import sal_service_pb2 as sal
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

CMC = record_pb2.RECORD_TYPE_CMC
CPE = record_pb2.RECORD_TYPE_CPE
MODES = (SalMode.EXTENDED, SalMode.PLAIN)


@dataclass
class Pcpu:
    """One started pCPU server, a stub on it, and the events it emitted."""

    server: PcpuServer
    stub: sal_grpc.SalServiceStub
    events: list[Event]
    tokens: TokenBook | None

    def as_(self, identity: str | None) -> tuple[tuple[str, str], ...]:
        """Call metadata presenting identity's token (none in development mode)."""
        if identity is None or self.tokens is None:
            return ()
        return call_metadata(self.tokens.token_for(identity))

    async def describe(
        self, identity: str | None = OPERATOR, limit: int = 0
    ) -> sal.DescribePcpuResponse:
        return await self.stub.DescribePcpu(
            sal.DescribePcpuRequest(pending_ids_limit=limit), metadata=self.as_(identity)
        )

    async def state(self, record_type: int = CMC) -> sal.RecordTypeState:
        reply = await self.describe(limit=MAX_PENDING_IDS_LIMIT)
        return next(t for t in reply.types if t.type == record_type)

    async def inject(self, count: int, record_type: int = CMC) -> sal.InjectErrorResponse:
        return await self.stub.InjectError(
            sal.InjectErrorRequest(type=record_type, count=count),  # type: ignore[arg-type]
            metadata=self.as_(OPERATOR),
        )

    async def clear(self, record_type: int = CMC, **kw: int) -> sal.ClearStateInfoResponse:
        return await self.stub.ClearStateInfo(
            sal.ClearStateInfoRequest(type=record_type, **kw),  # type: ignore[arg-type]
            metadata=self.as_(XEN),
        )

    async def get(self, record_type: int = CMC) -> sal.GetStateInfoResponse:
        return await self.stub.GetStateInfo(
            sal.GetStateInfoRequest(type=record_type),  # type: ignore[arg-type]
            metadata=self.as_(XEN),
        )

    async def mask(self, masked: bool, record_type: int = CMC) -> sal.SetInterruptMaskResponse:
        return await self.stub.SetInterruptMask(
            sal.SetInterruptMaskRequest(type=record_type, masked=masked),  # type: ignore[arg-type]
            metadata=self.as_(XEN),
        )

    def kinds(self, kind: str) -> list[Event]:
        return [e for e in self.events if e["kind"] == kind]


PcpuFactory = Callable[..., Awaitable[Pcpu]]


@pytest.fixture
async def make_pcpu() -> AsyncIterator[PcpuFactory]:
    started: list[tuple[PcpuServer, grpc.aio.Channel]] = []

    async def make(
        sal_mode: SalMode | str | None = None, tokens: TokenBook | None = None, **options: object
    ) -> Pcpu:
        events = EventLog("pcpu-plain-test")
        seen: list[Event] = []
        events.subscribe(seen.append)
        if sal_mode is not None:
            options["sal_mode"] = sal_mode
        server, port = create_server(
            "127.0.0.1:0",
            3,
            events=events,
            clock=FakeClock(),
            token_book=tokens,
            **options,  # type: ignore[arg-type]
        )
        await server.start()
        channel = open_channel(f"127.0.0.1:{port}")
        started.append((server, channel))
        return Pcpu(server, sal_grpc.SalServiceStub(channel), seen, tokens)

    yield make
    for server, channel in started:
        await channel.close()
        await server.stop(None)


@pytest.fixture
def tokens() -> TokenBook:
    return TokenBook.generate(DOM0, OPERATOR, XEN)


async def refused(
    call: Awaitable[object], code: grpc.StatusCode, reason: str
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == code, raised.value.details()
    info = error_info_of(raised.value)
    assert info is not None and info.reason == reason, info
    assert info.domain == "xenmca.dev"
    return raised.value


# --- the mode and how it is chosen ----------------------------------------------


async def test_extended_is_the_default_and_each_mode_is_reported(make_pcpu: PcpuFactory) -> None:
    default, extended, plain = (
        await make_pcpu(),
        await make_pcpu("extended"),
        await make_pcpu(SalMode.PLAIN),
    )
    assert default.server.firmware.sal_mode is SalMode.EXTENDED
    assert (await default.describe()).sal_mode == sal.SAL_MODE_EXTENDED
    assert (await extended.describe()).sal_mode == sal.SAL_MODE_EXTENDED
    assert (await plain.describe()).sal_mode == sal.SAL_MODE_PLAIN
    assert plain.server.firmware.plain and not extended.server.firmware.plain


async def test_a_host_gives_every_pcpu_its_mode() -> None:
    async with PcpuHost([0, 1], sal_mode="plain") as host:
        for address in host.addresses.values():
            async with open_channel(address) as channel:
                reply = await sal_grpc.SalServiceStub(channel).DescribePcpu(
                    sal.DescribePcpuRequest(), timeout=10
                )
            assert reply.sal_mode == sal.SAL_MODE_PLAIN
        assert all(s.firmware.sal_mode is SalMode.PLAIN for s in host.servers.values())


def test_an_unknown_mode_is_refused_in_process() -> None:
    with pytest.raises(ValueError, match="bogus"):
        PcpuHost([0], sal_mode="bogus")
    with pytest.raises(ValueError, match="bogus"):
        PcpuFirmware(RecordStore(0), sal_mode="bogus")


# --- ClearStateInfo in plain mode -----------------------------------------------


async def test_plain_clear_by_id_is_refused_and_nothing_changes(
    make_pcpu: PcpuFactory, tokens: TokenBook
) -> None:
    pcpu = await make_pcpu("plain", tokens)
    await pcpu.inject(3)
    before = await pcpu.state()
    current = await pcpu.get()
    for record_id in (1, 2, 3, 99):  # pending, pending, newest, never created
        error = await refused(
            pcpu.clear(record_id=record_id),
            grpc.StatusCode.FAILED_PRECONDITION,
            "PLAIN_SAL_NO_CLEAR_BY_ID",
        )
        assert "plain SAL" in (error.details() or "")
        info = error_info_of(error)
        assert info is not None and info.metadata["record_id"] == str(record_id)
    assert await pcpu.state() == before
    assert list(before.pending_record_ids) == [1, 2, 3] and before.cleared == 0
    assert (await pcpu.get()) == current
    assert pcpu.kinds("record_cleared") == []


async def test_plain_firmware_refuses_clear_by_id_when_called_directly() -> None:
    firmware = PcpuFirmware(RecordStore(0), sal_mode=SalMode.PLAIN)
    with pytest.raises(RequestError) as raised:
        await firmware.clear(CMC, 1)
    assert raised.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert raised.value.reason == "PLAIN_SAL_NO_CLEAR_BY_ID"


async def test_plain_clear_takes_the_current_record_in_fifo_order(
    make_pcpu: PcpuFactory, tokens: TokenBook
) -> None:
    pcpu = await make_pcpu("plain", tokens)
    rng = random.Random(20061)
    # Interleave CMC and CPE injections so that each type's ids are not contiguous.
    expected: dict[int, list[int]] = {CMC: [], CPE: []}
    for _ in range(6):
        chosen: int = rng.choice((CMC, CPE))
        injected = await pcpu.inject(rng.randint(1, 4), chosen)
        expected[chosen] += range(injected.first_record_id, injected.last_record_id + 1)
    for record_type, ids in expected.items():
        for record_id in ids:
            assert (await pcpu.get(record_type)).record.record_id == record_id
            reply = await pcpu.clear(record_type)
            assert (reply.sal_status, reply.cleared_record_id) == (0, record_id)
            # Extensions absent in plain mode, even with records left.
            assert (reply.remaining, reply.already_cleared) == (0, False)
        empty = await pcpu.clear(record_type)
        assert (empty.sal_status, empty.cleared_record_id, empty.remaining) == (-5, 0, 0)
    # Events are the same as in extended mode: they still say what remained.
    cleared = pcpu.kinds("record_cleared")
    assert [e["record_id"] for e in cleared] == expected[CMC] + expected[CPE]
    remaining = [e["remaining"] for e in cleared]
    assert remaining == [*range(len(expected[CMC]))][::-1] + [*range(len(expected[CPE]))][::-1]


async def test_extended_clear_reports_its_extensions(make_pcpu: PcpuFactory) -> None:
    pcpu = await make_pcpu("extended")
    await pcpu.inject(3)
    by_id = await pcpu.clear(record_id=2)
    assert (by_id.cleared_record_id, by_id.remaining, by_id.already_cleared) == (2, 2, False)
    again = await pcpu.clear(record_id=2)
    assert (again.cleared_record_id, again.already_cleared) == (2, True)
    current = await pcpu.clear()
    assert (current.cleared_record_id, current.remaining) == (1, 1)


async def test_plain_clears_are_durable_as_in_extended_mode(
    make_pcpu: PcpuFactory, tmp_path: Path
) -> None:
    first = await make_pcpu("plain", state_dir=tmp_path)
    await first.inject(3)
    assert (await first.clear()).cleared_record_id == 1
    await first.server.stop(None)
    again = await make_pcpu("plain", state_dir=tmp_path)
    state = await again.state()
    assert list(state.pending_record_ids) == [2, 3] and state.cleared == 1
    assert (await again.describe()).durable


# --- SetInterruptMask in plain mode ---------------------------------------------


async def test_plain_mask_is_applied_but_reports_no_counts(
    make_pcpu: PcpuFactory, tokens: TokenBook
) -> None:
    pcpu = await make_pcpu("plain", tokens)
    await pcpu.inject(2)
    masked = await pcpu.mask(True)
    assert (masked.previously_masked, masked.pending, masked.created) == (False, 0, 0)
    await pcpu.inject(3)  # while masked: stored, no interrupt
    state = await pcpu.state()
    assert state.masked and state.pending == 5 and state.interrupts_raised == 2
    unmasked = await pcpu.mask(False)
    assert (unmasked.previously_masked, unmasked.pending, unmasked.created) == (True, 0, 0)
    assert not (await pcpu.state()).masked
    # The event still carries the count, as in extended mode.
    assert [e["pending"] for e in pcpu.kinds("mask_changed")] == [2, 5]


async def test_extended_mask_reports_pending_and_created(make_pcpu: PcpuFactory) -> None:
    pcpu = await make_pcpu()
    await pcpu.inject(2)
    reply = await pcpu.mask(True)
    assert (reply.previously_masked, reply.pending, reply.created) == (False, 2, 2)


# --- the rest of SAL is unchanged in plain mode -----------------------------------


async def test_plain_get_size_inject_and_interrupts_are_unchanged(
    make_pcpu: PcpuFactory, tokens: TokenBook
) -> None:
    plain, extended = await make_pcpu("plain", tokens), await make_pcpu("extended", tokens)
    for record_type in (CMC, CPE):
        request = sal.GetStateInfoSizeRequest(type=record_type)  # type: ignore[arg-type]
        sizes = [await p.stub.GetStateInfoSize(request) for p in (plain, extended)]
        assert sizes[0] == sizes[1] and sizes[0].size > 0
    watch = plain.stub.WatchInterrupts(sal.WatchInterruptsRequest(), metadata=plain.as_(XEN))
    await watch.initial_metadata()
    injected = await plain.inject(2)
    assert (injected.stored, injected.first_record_id, injected.last_record_id) == (2, 1, 2)
    interrupts = [await watch.read() for _ in range(2)]
    assert [(i.pcpu, i.type, i.record_id) for i in interrupts] == [(3, CMC, 1), (3, CMC, 2)]
    watch.cancel()
    record = (await plain.get()).record
    assert record.record_id == 1 and record.pcpu == 3


# --- DescribePcpu and the caller's identity ---------------------------------------


async def test_plain_describe_is_refused_to_xen_and_answered_to_the_operator(
    make_pcpu: PcpuFactory, tokens: TokenBook
) -> None:
    pcpu = await make_pcpu("plain", tokens)
    await pcpu.inject(2)
    error = await refused(
        pcpu.describe(XEN, limit=10), grpc.StatusCode.FAILED_PRECONDITION, "PLAIN_SAL_EXTENSION"
    )
    assert "--sal plain" in (error.details() or "")
    info = error_info_of(error)
    assert info is not None and info.metadata["method"] == "DescribePcpu"
    answered = await pcpu.describe(OPERATOR, limit=10)
    assert answered.sal_mode == sal.SAL_MODE_PLAIN
    assert list(answered.types[2].pending_record_ids) == [1, 2]
    assert (await pcpu.describe(DOM0)).sal_mode == sal.SAL_MODE_PLAIN
    # The coordinator still makes the SAL calls.
    assert (await pcpu.get()).record.record_id == 1


async def test_extended_describe_is_answered_to_xen(
    make_pcpu: PcpuFactory, tokens: TokenBook
) -> None:
    pcpu = await make_pcpu("extended", tokens)
    assert (await pcpu.describe(XEN)).sal_mode == sal.SAL_MODE_EXTENDED


async def test_plain_describe_is_answered_when_identities_are_not_enforced(
    make_pcpu: PcpuFactory,
) -> None:
    pcpu = await make_pcpu("plain")  # no token book, no TLS: development
    reply = await pcpu.stub.DescribePcpu(sal.DescribePcpuRequest())
    assert reply.sal_mode == sal.SAL_MODE_PLAIN and reply.pcpu == 3


# --- pending_record_ids, in both modes --------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_pending_record_ids_oldest_first_within_the_limit(
    make_pcpu: PcpuFactory, mode: SalMode
) -> None:
    pcpu = await make_pcpu(mode)
    await pcpu.inject(5, CMC)  # ids 1-5
    await pcpu.inject(2, CPE)  # ids 6-7
    await pcpu.inject(2, CMC)  # ids 8-9
    await pcpu.clear(CMC)  # clears 1, the current record
    by_limit = {}
    for limit in (0, 1, 3, 6, 50, MAX_PENDING_IDS_LIMIT):
        reply = await pcpu.describe(limit=limit)
        by_limit[limit] = {t.type: list(t.pending_record_ids) for t in reply.types}
    assert by_limit[0] == {t: [] for t in by_limit[0]}
    assert by_limit[1][CMC] == [2] and by_limit[1][CPE] == [6]
    assert by_limit[3][CMC] == [2, 3, 4] and by_limit[3][CPE] == [6, 7]
    assert by_limit[6][CMC] == [2, 3, 4, 5, 8, 9]
    assert by_limit[50] == by_limit[MAX_PENDING_IDS_LIMIT] == by_limit[6]
    assert by_limit[50][record_pb2.RECORD_TYPE_MCA] == []
    default = await pcpu.stub.DescribePcpu(sal.DescribePcpuRequest())
    assert all(not t.pending_record_ids for t in default.types)


@pytest.mark.parametrize("mode", MODES)
async def test_a_pending_ids_limit_too_large_is_refused(
    make_pcpu: PcpuFactory, mode: SalMode
) -> None:
    pcpu = await make_pcpu(mode)
    await pcpu.inject(1)
    for limit in (MAX_PENDING_IDS_LIMIT + 1, 2**32 - 1):
        error = await refused(
            pcpu.describe(limit=limit),
            grpc.StatusCode.INVALID_ARGUMENT,
            "PENDING_IDS_LIMIT_TOO_LARGE",
        )
        info = error_info_of(error)
        assert info is not None
        assert (info.metadata["field"], info.metadata["value"]) == ("pending_ids_limit", str(limit))
    assert (await pcpu.state()).pending == 1


# --- `xenmca serve pcpu --sal` ----------------------------------------------------


def test_serve_pcpu_parses_sal() -> None:
    for argv, expected in (
        (["serve", "pcpu", "--pcpu", "0"], "extended"),
        (["serve", "pcpu", "--pcpu", "0", "--sal", "plain"], "plain"),
        (["serve", "pcpu", "--pcpus", "0-3", "--sal", "extended"], "extended"),
    ):
        args = build_parser(argv).parse_args(argv)
        assert args.sal == expected and SalMode(args.sal) == expected


@pytest.mark.parametrize("value", ["bogus", "PLAIN", ""])
def test_serve_pcpu_refuses_a_bad_sal_in_one_line(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        xenmca_main(["serve", "pcpu", "--pcpu", "0", "--sal", value])
    assert raised.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "--sal" in err and "plain" in err and "extended" in err, err


@pytest.mark.slow
async def test_serve_pcpu_with_sal_plain_serves_plain_sal() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "xenmca.cli",
        "serve",
        "pcpu",
        "--pcpu",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--sal",
        "plain",
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        serving = ""
        async with asyncio.timeout(30):
            while "serving pCPUs" not in serving:
                line = await process.stderr.readline()
                assert line, "serve exited before serving"
                serving = line.decode()
        assert "plain SAL" in serving, serving
        found = re.search(r"on (127\.0\.0\.1:\d+)", serving)
        assert found is not None, serving
        async with open_channel(found.group(1)) as channel:
            stub = sal_grpc.SalServiceStub(channel)
            reply = await stub.DescribePcpu(sal.DescribePcpuRequest(), timeout=10)
            assert (reply.pcpu, reply.sal_mode) == (2, sal.SAL_MODE_PLAIN)
            await stub.InjectError(sal.InjectErrorRequest(type=CMC, count=1), timeout=10)
            await refused(
                stub.ClearStateInfo(sal.ClearStateInfoRequest(type=CMC, record_id=1), timeout=10),
                grpc.StatusCode.FAILED_PRECONDITION,
                "PLAIN_SAL_NO_CLEAR_BY_ID",
            )
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await process.stderr.read()
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
