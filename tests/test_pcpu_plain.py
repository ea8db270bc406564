"""Plain SAL mode (what real SAL offers) beside extended mode, and DescribePcpu's pending ids.

Real in-process servers on port 0 (pcpu_plain_helpers), with and without identities;
`xenmca serve pcpu --sal` is in test_pcpu_plain_cli.py.
"""

from __future__ import annotations

import random
from pathlib import Path

import grpc
import pytest
from pcpu_plain_helpers import (
    CMC,
    CPE,
    PcpuFactory,
)
from pcpu_plain_helpers import make_pcpu as make_pcpu
from pcpu_plain_helpers import tokens as tokens
from refusals import refused

from xenmca.pcpu.firmware import PcpuFirmware
from xenmca.pcpu.model import MAX_PENDING_IDS_LIMIT, SalMode
from xenmca.pcpu.server import PcpuHost
from xenmca.pcpu.store import RecordStore
from xenmca.record.v1 import record_pb2
from xenmca.rpc.channels import open_channel
from xenmca.rpc.errors import RequestError, error_info_of
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook
from xenmca.sal.v1 import sal_service_pb2 as sal
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

MODES = (SalMode.EXTENDED, SalMode.PLAIN)


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
