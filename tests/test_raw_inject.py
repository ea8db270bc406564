"""Real records in: InjectError's raw_record on a real pCPU server, and `xenmca inject --record`.

The pCPU stores a given record byte for byte except the header id, which it assigns;
bytes that do not decode strictly are refused with RECORD_UNDECODABLE naming the
offset, and nothing is stored. The command runs as a real process against an
in-process pCPU host.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cli_process import xenmca
from hypothesis import strategies as st
from sal_samples import mixed_raw, sample_raw
from test_fuzz_support import LoopBed, answer, check_conservation, describe_pcpus, run_examples

from xenmca.layout.api import decode_record, problem_offset, with_record_id
from xenmca.layout.errors import RecordFormatError
from xenmca.pcpu.server import PcpuHost
from xenmca.record.v1 import record_pb2
from xenmca.rpc.channels import open_channel
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook, call_metadata
from xenmca.sal.v1 import sal_service_pb2 as sal
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

CMC = record_pb2.RECORD_TYPE_CMC
CPE = record_pb2.RECORD_TYPE_CPE
MCA = record_pb2.RECORD_TYPE_MCA


@dataclass
class Host:
    host: PcpuHost
    stub: sal_grpc.SalServiceStub
    operator: tuple[tuple[str, str], ...]
    xen: tuple[tuple[str, str], ...]
    common: tuple[str, ...]
    """--pcpu and --token-file for `xenmca inject`."""

    async def inject(
        self, raw: bytes, record_type: int = CMC, **fields: object
    ) -> sal.InjectErrorResponse:
        return await self.stub.InjectError(
            sal.InjectErrorRequest(type=record_type, raw_record=raw, **fields),  # type: ignore[arg-type]
            metadata=self.operator,
        )

    async def current(self, record_type: int = CMC) -> record_pb2.ErrorRecord:
        request = sal.GetStateInfoRequest(type=record_type)  # type: ignore[arg-type]
        reply = await self.stub.GetStateInfo(request, metadata=self.xen)
        assert reply.sal_status == 0
        return reply.record

    async def clear(self, record_type: int = CMC) -> None:
        request = sal.ClearStateInfoRequest(type=record_type)  # type: ignore[arg-type]
        await self.stub.ClearStateInfo(request, metadata=self.xen)

    def pending(self, record_type: int = CMC) -> int:
        return self.host.servers[0].firmware.store.pending_count(record_type)

    @property
    def next_record_id(self) -> int:
        return self.host.servers[0].firmware.store.next_record_id


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    tokens = TokenBook.generate(DOM0, OPERATOR, XEN)
    token_file = tmp_path / "tokens.json"
    tokens.save(token_file)
    pcpus = PcpuHost([0], token_book=tokens)
    await pcpus.start()
    channel = open_channel(pcpus.addresses[0])
    try:
        yield Host(
            pcpus,
            sal_grpc.SalServiceStub(channel),
            call_metadata(tokens.token_for(OPERATOR)),
            call_metadata(tokens.token_for(XEN)),
            ("--pcpu", pcpus.addresses[0], "--token-file", str(token_file)),
        )
    finally:
        await channel.close()
        await pcpus.stop(grace=None)


async def refused(host: Host, raw: bytes, reason: str, **fields: object) -> dict[str, str]:
    before = host.next_record_id
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await host.inject(raw, CMC, **fields)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    info = error_info_of(raised.value)
    assert info is not None and info.reason == reason, info
    assert host.next_record_id == before and host.pending() == 0  # nothing stored
    return dict(info.metadata)


# --- the pCPU ---------------------------------------------------------------------------


async def test_a_given_record_is_stored_as_given_with_the_firmwares_id(host: Host) -> None:
    await host.inject(sample_raw(1), CPE)  # ids 1: the firmware numbers across types
    raw = mixed_raw()
    reply = await host.inject(raw)
    assert (reply.accepted, reply.stored, reply.first_record_id, reply.last_record_id) == (
        1,
        1,
        2,
        2,
    )
    record = await host.current()
    assert record.record_id == 2 and record.type == CMC
    assert record.raw == with_record_id(raw, 2)
    assert record.raw[8:] == raw[8:] and decode_record(record.raw).record_id == 2
    # Its severity is the header's (fatal); the unknown section is only in raw.
    assert record.severity == record_pb2.SEVERITY_FATAL
    assert [s.WhichOneof("body") for s in record.sections] == [
        "processor",
        "platform_memory",
        "pci_bus",
        "platform_specific",
    ]


async def test_copies_and_paced_copies_each_get_their_own_id(host: Host) -> None:
    raw = sample_raw(2, severity=0)
    reply = await host.inject(raw, count=3, severity=record_pb2.SEVERITY_RECOVERABLE)
    assert (reply.stored, reply.first_record_id, reply.last_record_id) == (3, 1, 3)
    for record_id in (1, 2, 3):
        record = await host.current()
        assert record.raw == with_record_id(raw, record_id)
        assert record.severity == record_pb2.SEVERITY_RECOVERABLE
        await host.clear()
    paced = await host.inject(raw, MCA, count=2, rate_per_second=1000.0)
    assert paced.injection_id == 1
    await host.host.servers[0].firmware.wait_paced()
    assert [r.raw for r in host.host.servers[0].firmware.store.pending_records(MCA)] == [
        with_record_id(raw, 4),
        with_record_id(raw, 5),
    ]


async def test_given_records_survive_a_restart_of_a_durable_host(tmp_path: Path) -> None:
    raw = mixed_raw()
    first = PcpuHost([0], state_dir=tmp_path)
    await first.start()
    async with open_channel(first.addresses[0]) as channel:
        await sal_grpc.SalServiceStub(channel).InjectError(
            sal.InjectErrorRequest(type=CMC, raw_record=raw)
        )
    await first.stop(grace=None)
    again = PcpuHost([0], state_dir=tmp_path)
    await again.start()
    try:
        (stored,) = again.servers[0].firmware.store.pending_records(CMC)
        assert stored.raw == with_record_id(raw, 1)
        assert stored.severity == record_pb2.SEVERITY_FATAL
    finally:
        await again.stop(grace=None)


@pytest.mark.parametrize(
    ("cut", "offset"),
    [
        (slice(0, 30), 30),  # a header cut short: the missing bytes start at 30
        (slice(0, -1), 12),  # the len field says one byte more than there is
    ],
)
async def test_undecodable_bytes_are_refused_naming_the_offset(
    host: Host, cut: slice, offset: int
) -> None:
    metadata = await refused(host, mixed_raw()[cut], "RECORD_UNDECODABLE")
    assert metadata["field"] == "raw_record" and int(metadata["offset"]) == offset


async def test_a_bad_section_length_is_refused_at_its_offset(host: Host) -> None:
    raw = bytearray(mixed_raw())
    raw[40 + 20] = 3  # the first section's len, below its 24-byte header
    metadata = await refused(host, bytes(raw), "RECORD_UNDECODABLE")
    assert int(metadata["offset"]) == 60


async def test_raw_record_conflicts_are_refused(host: Host) -> None:
    raw = sample_raw(3)  # corrected
    await refused(host, raw, "SEVERITY_CONFLICT", severity=record_pb2.SEVERITY_FATAL)
    await refused(
        host,
        raw,
        "RAW_RECORD_WITH_SECTIONS",
        sections=[record_pb2.Section(processor=record_pb2.ProcessorSection())],
    )
    await host.inject(raw, severity=record_pb2.SEVERITY_CORRECTED)  # the same severity is fine
    assert host.pending() == 1


# --- fuzzing the bytes -----------------------------------------------------------------


@dataclass(frozen=True)
class Mutation:
    seed: int
    flips: tuple[tuple[int, int], ...]
    cut: int | None
    tail: bytes

    def apply(self) -> bytes:
        data = bytearray(sample_raw(self.seed))
        for position, value in self.flips:
            data[position % len(data)] = value
        if self.cut is not None:
            del data[self.cut % (len(data) + 1) :]
        return bytes(data) + self.tail


mutations = st.builds(
    Mutation,
    st.integers(0, 10_000),
    st.lists(st.tuples(st.integers(0, 600), st.integers(0, 255)), max_size=3).map(tuple),
    st.one_of(st.none(), st.integers(0, 600)),
    st.one_of(st.just(b""), st.binary(max_size=8)),
)


async def inject_mutated(bed, drawn: Mutation) -> None:  # type: ignore[no-untyped-def]
    """Decodable bytes are stored as given (id aside); any other is refused at the
    offset the strict decoder names, and creates nothing."""
    raw = drawn.apply()
    firmware = bed.flow.host.servers[0].firmware
    if firmware.store.pending_count(CMC) >= firmware.store.capacity:
        await firmware.clear(CMC, None)
    before = await describe_pcpus(bed)
    got = await answer(
        bed.flow.sal(0).InjectError(
            sal.InjectErrorRequest(type=CMC, raw_record=raw), metadata=bed.flow.md(OPERATOR)
        )
    )
    await check_conservation(bed)
    if not raw:  # proto3: empty bytes are no raw_record, so a generated record
        assert got.ok and got.reply.stored == 1, got
        return
    try:
        decoded = decode_record(raw)
    except RecordFormatError as exc:
        assert got.refused(grpc.StatusCode.INVALID_ARGUMENT, "RECORD_UNDECODABLE"), got
        assert got.info is not None
        assert int(got.info.metadata["offset"]) == problem_offset(exc, len(raw))
        assert firmware.store.next_record_id == before[0].next_record_id
        return
    assert got.ok and got.reply.stored == 1, got
    (stored,) = [
        r for r in firmware.store.pending_records(CMC) if r.record_id == got.reply.last_record_id
    ]
    assert stored.raw == with_record_id(raw, stored.record_id)
    assert stored.severity == decoded.severity + 1


def test_fuzz_raw_records_are_stored_exactly_or_refused() -> None:
    with LoopBed(pcpus=1) as loop:
        run_examples(loop, 150, mutations, inject_mutated)


# --- xenmca inject --record ---------------------------------------------------------------


async def test_inject_record_file_directory_and_stdin(host: Host, tmp_path: Path) -> None:
    one, two = sample_raw(4), mixed_raw()
    both = tmp_path / "both.sal"
    both.write_bytes(one + two)
    done = await xenmca("inject", *host.common, "--type", "cmc", "--record", str(both))
    assert (done.code, done.out.strip()) == (
        0,
        f"2 records from {both}: accepted 2, stored 2, overflowed 0, ids 1-2",
    ), done.err
    stored = host.host.servers[0].firmware.store.pending_records(CMC)
    assert [r.raw for r in stored] == [with_record_id(one, 1), with_record_id(two, 2)]

    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "b.sal").write_bytes(two)
    (folder / "a.sal").write_bytes(one)
    (folder / ".hidden").write_bytes(b"junk")
    copies = await xenmca(
        "inject", *host.common, "--type", "cpe", "--record", str(folder), "--count", "2"
    )
    assert copies.code == 0 and copies.out.strip().endswith("stored 4, overflowed 0, ids 3-6")
    cpe = host.host.servers[0].firmware.store.pending_records(CPE)
    assert [r.raw[8:] for r in cpe] == [one[8:], one[8:], two[8:], two[8:]]

    piped = await xenmca("inject", *host.common, "--type", "mca", "--record", "-", stdin=two)
    assert piped.code == 0 and "1 record from -: accepted 1, stored 1" in piped.out

    paced = await xenmca(
        "inject", *host.common, "--type", "init", "--record", str(both), "--count", "2",
        "--rate", "1000",
    )  # fmt: skip
    assert (paced.code, paced.out.strip()) == (
        0,
        f"2 records from {both}: accepted 4, paced at 1000/s as injections 1-2",
    ), paced.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--record", "FILE"), "--type is required with --record"),
        (("--type", "cmc", "--record", "FILE", "--severity", "fatal"), "--severity does not go"),
        (("--list", "--record", "FILE"), "--list does not take --record"),
        (
            ("--type", "cmc", "--record", "BAD"),
            "bad.sal: record 2 at byte 538: section at offset 40",
        ),
        (("--type", "cmc", "--record", "EMPTY"), "no SAL record (the input is empty)"),
        (("--type", "cmc", "--record", "MISSING"), "no such file or directory"),
    ],
)
async def test_inject_record_refusals_are_one_line_exit_2_and_store_nothing(
    host: Host, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    bad = bytearray(mixed_raw() + mixed_raw())
    bad[538 + 40 + 20] = 3
    files = {
        "FILE": tmp_path / "good.sal",
        "BAD": tmp_path / "bad.sal",
        "EMPTY": tmp_path / "empty.sal",
        "MISSING": tmp_path / "missing.sal",
    }
    files["FILE"].write_bytes(mixed_raw())
    files["BAD"].write_bytes(bytes(bad))
    files["EMPTY"].write_bytes(b"")
    argv = [str(files.get(a, a)) for a in args]
    result = await xenmca("inject", *host.common, *argv)
    assert result.code == 2, result
    assert len(result.err.strip().splitlines()) == 1 and message in result.err, result.err
    assert host.next_record_id == 1  # the good first record of BAD was not sent either
