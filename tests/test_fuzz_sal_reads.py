"""Fuzzing SalService's reads and clears of real pCPU servers: GetStateInfo,
GetStateInfoSize and ClearStateInfo with arbitrary fields and credentials."""

from __future__ import annotations

from dataclasses import dataclass

from fuzz_sal_helpers import INVALID_ARGUMENT, PCPUS, auth_refusal, pcpus, record_types, seed, stub
from fuzz_strategies import (
    RECORD_TYPES,
    SAL_NO_INFORMATION,
    SAL_OK,
    Credential,
    caller,
    credentials,
    record_ids,
)
from hypothesis import strategies as st
from test_fuzz_support import (
    CALL_TIMEOUT,
    FuzzBed,
    LoopBed,
    answer,
    check_conservation,
    describe_pcpus,
    run_examples,
    type_state,
)

from xenmca.layout.codec import decode_record
from xenmca.rpc.identity import XEN
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2

# --- GetStateInfo / GetStateInfoSize ---------------------------------------------------


@dataclass(frozen=True)
class TypedCall:
    pcpu: int
    record_type: int
    credential: Credential


typed_calls = st.builds(TypedCall, pcpus, record_types, caller(XEN))
open_typed_calls = st.builds(TypedCall, pcpus, record_types, credentials)


async def get_state_info(bed: FuzzBed, drawn: TypedCall) -> None:
    got = await answer(
        stub(bed, drawn.pcpu).GetStateInfo(
            sal_pb2.GetStateInfoRequest(type=drawn.record_type),  # type: ignore[arg-type]
            metadata=drawn.credential.metadata(bed.flow.tokens),
            timeout=CALL_TIMEOUT,
        )
    )
    refusal = auth_refusal("GetStateInfo", drawn.credential)
    if refusal is not None:
        assert got.code == refusal, got
    elif drawn.record_type not in RECORD_TYPES:
        assert got.refused(INVALID_ARGUMENT, "INVALID_RECORD_TYPE"), got
    else:
        assert got.ok, got
        state = type_state((await describe_pcpus(bed))[drawn.pcpu], drawn.record_type)
        if state.pending == 0:
            assert got.reply.sal_status == SAL_NO_INFORMATION
            assert not got.reply.HasField("record")
        else:
            record = got.reply.record
            assert got.reply.sal_status == SAL_OK
            assert (record.pcpu, record.type) == (drawn.pcpu, drawn.record_type)
            assert record.record_id == state.oldest_record_id
            assert decode_record(record.raw).record_id == record.record_id
    await check_conservation(bed)


def test_fuzz_sal_get_state_info() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        loop.run(seed(loop.bed))
        run_examples(loop, 100, typed_calls, get_state_info)


async def get_state_info_size(bed: FuzzBed, drawn: TypedCall) -> None:
    got = await answer(
        stub(bed, drawn.pcpu).GetStateInfoSize(
            sal_pb2.GetStateInfoSizeRequest(type=drawn.record_type),  # type: ignore[arg-type]
            metadata=drawn.credential.metadata(bed.flow.tokens),
            timeout=CALL_TIMEOUT,
        )
    )
    if drawn.record_type not in RECORD_TYPES:
        assert got.refused(INVALID_ARGUMENT, "INVALID_RECORD_TYPE"), got
    else:  # open to every caller
        assert got.ok, got
        state = type_state((await describe_pcpus(bed))[drawn.pcpu], drawn.record_type)
        assert got.reply.sal_status == SAL_OK
        assert got.reply.size == state.max_record_size > 0


def test_fuzz_sal_get_state_info_size() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        run_examples(loop, 60, open_typed_calls, get_state_info_size)


# --- ClearStateInfo --------------------------------------------------------------------


@dataclass(frozen=True)
class ClearCall:
    pcpu: int
    record_type: int
    record_id: int | None
    credential: Credential


clear_calls = st.builds(
    ClearCall, pcpus, record_types, st.one_of(st.none(), record_ids), caller(XEN)
)


async def clear_state_info(bed: FuzzBed, drawn: ClearCall) -> None:
    store = bed.flow.host.servers[drawn.pcpu].firmware.store
    if sum(store.pending_count(t) for t in RECORD_TYPES) < 4:
        await seed(bed, per_type=2)
    before = (
        type_state((await describe_pcpus(bed))[drawn.pcpu], drawn.record_type)
        if (drawn.record_type in RECORD_TYPES)
        else None
    )
    pending = {t: [r.record_id for r in store.pending_records(t)] for t in RECORD_TYPES}
    next_id = store.next_record_id
    request = sal_pb2.ClearStateInfoRequest(type=drawn.record_type)  # type: ignore[arg-type]
    if drawn.record_id is not None:
        request.record_id = drawn.record_id
    got = await answer(
        stub(bed, drawn.pcpu).ClearStateInfo(
            request, metadata=drawn.credential.metadata(bed.flow.tokens), timeout=CALL_TIMEOUT
        )
    )
    refusal = auth_refusal("ClearStateInfo", drawn.credential)
    cleared = False
    if refusal is not None:
        assert got.code == refusal, got
    elif before is None:
        assert got.refused(INVALID_ARGUMENT, "INVALID_RECORD_TYPE"), got
    else:
        mine = pending[drawn.record_type]
        others = [rid for t, ids in pending.items() if t != drawn.record_type for rid in ids]
        rid = drawn.record_id
        if rid is None and not mine:
            assert got.ok and got.reply.sal_status == SAL_NO_INFORMATION, got
        elif rid is None or rid in mine:
            target = mine[0] if rid is None else rid
            assert got.ok, got
            reply = got.reply
            assert (reply.sal_status, reply.cleared_record_id) == (SAL_OK, target)
            assert not reply.already_cleared and reply.remaining == len(mine) - 1
            cleared = True
        elif rid in others:
            assert got.refused(INVALID_ARGUMENT, "RECORD_TYPE_MISMATCH"), got
        elif 1 <= rid < next_id:
            assert got.ok, got
            assert (got.reply.sal_status, got.reply.cleared_record_id) == (SAL_OK, rid)
            assert got.reply.already_cleared
        else:
            assert got.refused(INVALID_ARGUMENT, "UNKNOWN_RECORD_ID"), got
    if before is not None:
        after = type_state((await describe_pcpus(bed))[drawn.pcpu], drawn.record_type)
        assert after.cleared == before.cleared + cleared
        assert after.pending == before.pending - cleared
    await check_conservation(bed)


def test_fuzz_sal_clear_state_info() -> None:
    with LoopBed(pcpus=len(PCPUS)) as loop:
        loop.run(seed(loop.bed))
        run_examples(loop, 150, clear_calls, clear_state_info)
