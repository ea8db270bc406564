"""Records out and back in: `log export --format raw` -> replay into a fresh testbed ->
export again gives the same bytes; and `xenmca replay` as a real process.

The testbeds are in process (pCPU servers, the coordinator and dom0's logger on port 0,
as the plugin's start_testbed builds them). The firmware assigns only the record id (the
header's bytes 0-7, and the log's record_id) and the creation time (the log's
created_at, the dump's created_ns); replay sends each pCPU's records in their original
order, so a fresh testbed numbers them as the first did and the raw bytes compare equal
in full. Replayed into pCPUs that already made records, they compare equal but for the
id, which is the new firmware's.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_process import xenmca
from flow_harness import CMC, CPE, EventWatch, FlowBed
from sal_samples import mixed_raw, sample_raw

from xenmca import cli
from xenmca.dom0.log_store import LogStore
from xenmca.dom0.pacing import PollSettings
from xenmca.layout.api import decode_record, with_record_id
from xenmca.ops.dumps import dump_line, read_dump
from xenmca.ops.replay import plan_replay, replay
from xenmca.pcpu.server import PcpuHost
from xenmca.record.v1 import record_pb2
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook
from xenmca.sal.v1 import sal_service_pb2 as sal
from xenmca.testing.config import BedConfig
from xenmca.testing.testbed import start_testbed

MCA = record_pb2.RECORD_TYPE_MCA
FIRMWARE_ASSIGNED = ("created_ns",)
"""Dump fields a replay does not reproduce: when the new firmware created the record."""


@dataclass
class Bed:
    flow: FlowBed
    store: LogStore
    dom0: EventWatch  # every component's events; dom0's have component "dom0"
    db: Path

    async def inject(
        self, pcpu: int, record_type: int, *, raw: bytes = b"", count: int = 1
    ) -> None:
        await self.flow.sal(pcpu).InjectError(
            sal.InjectErrorRequest(type=record_type, raw_record=raw, count=count),  # type: ignore[arg-type]
            metadata=self.flow.md(OPERATOR),
        )

    async def logged(self, total: int) -> None:
        """Wait until dom0 has logged and cleared ``total`` records."""
        await self.dom0.wait_for("record_cleared", count=total, within=30, component="dom0")
        assert (await self.store.counts()).total == total


@asynccontextmanager
async def running_bed(tmp_path: Path, name: str) -> AsyncIterator[Bed]:
    """Two pCPUs, the coordinator and dom0 logging to NAME.sqlite (CPE polled every 20-100 ms)."""
    db = tmp_path / f"{name}.sqlite"
    config = BedConfig(pcpus=2, cpe_poll=PollSettings(0.02, 0.1))
    async with start_testbed(config, db) as bed:
        assert bed.dom0.store is not None
        yield Bed(bed.flow, bed.dom0.store, bed.watch, db)


async def fill(bed: Bed) -> int:
    """Generated and given records of three types on both pCPUs; how many."""
    await bed.inject(0, CMC, count=3)
    await bed.inject(0, CMC, raw=mixed_raw())
    await bed.inject(0, MCA)
    await bed.inject(1, CPE, count=2)
    await bed.inject(1, CPE, raw=sample_raw(11, severity=0))
    await bed.inject(1, CMC)
    return 9


def export(db: Path, out: Path, form: str = "raw") -> None:
    assert cli.main(["log", "export", "--db", str(db), "--format", form, "--out", str(out)]) == 0


def dump_lines(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted(lines, key=lambda line: (line["pcpu"], line["record_id"]))


async def replay_into(
    bed: Bed, dump: Path, speed: float = 1.0, max_gap_s: float | None = None
) -> None:
    plan = plan_replay(read_dump(dump), speed, max_gap_s)
    summary = await replay(plan, bed.flow.host.addresses, bed.flow.md(OPERATOR))
    assert (summary.failed_records, summary.accepted_records) == (0, len(plan))


async def test_export_raw_replay_export_raw_gives_the_same_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    async with running_bed(tmp_path, "first") as bed:
        await bed.logged(await fill(bed))
        export(bed.db, first)
    async with running_bed(tmp_path, "second") as bed:
        await replay_into(bed, first)
        await bed.logged(9)
        export(bed.db, second)

    before, after = dump_lines(first), dump_lines(second)
    assert len(before) == len(after) == 9
    assert [line["raw_hex"] for line in after] == [line["raw_hex"] for line in before]
    for line in (*before, *after):
        del line["created_ns"]
    assert after == before  # pCPU, type, record id, severity and every byte
    given = {bytes.fromhex(line["raw_hex"])[8:] for line in after}
    assert mixed_raw()[8:] in given and sample_raw(11, severity=0)[8:] in given


async def test_replayed_onto_busy_pcpus_only_the_id_differs(tmp_path: Path) -> None:
    """The directory form (--format sal) into pCPUs that already made two records each."""
    first, folder, second = tmp_path / "first.jsonl", tmp_path / "sal", tmp_path / "second.jsonl"
    async with running_bed(tmp_path, "first") as bed:
        await bed.logged(await fill(bed))
        export(bed.db, first)
        export(bed.db, folder, "sal")
    async with running_bed(tmp_path, "second") as bed:
        for pcpu in (0, 1):
            await bed.inject(pcpu, CMC, count=2)
        await bed.logged(4)
        # The given records' headers keep their own time (2026-12-04 16:38:02), far from
        # the generated ones' (their creation): cap the wait between two records.
        await replay_into(bed, folder, max_gap_s=0.05)
        await bed.logged(13)
        export(bed.db, second)

    # The directory form times records by their headers (whole seconds; a given record
    # keeps its own), so the new ids follow those times: match the records by content.
    before = {(b["pcpu"], bytes.fromhex(b["raw_hex"])[8:]): b for b in dump_lines(first)}
    after = [line for line in dump_lines(second) if line["record_id"] > 2]
    assert sorted((a["pcpu"], a["record_id"]) for a in after) == sorted(
        (b["pcpu"], b["record_id"] + 2) for b in before.values()
    )
    for new in after:
        new_raw = bytes.fromhex(new["raw_hex"])
        old = before.pop((new["pcpu"], new_raw[8:]))
        assert new_raw == with_record_id(bytes.fromhex(old["raw_hex"]), new["record_id"])
        assert (new["type"], new["severity"]) == (old["type"], old["severity"])
    assert not before


# --- xenmca replay, a real process ----------------------------------------------------------


@dataclass
class Hosts:
    host: PcpuHost
    token_file: Path
    dump: Path
    raws: list[tuple[int, bytes]]

    def stored(self, pcpu: int) -> list[bytes]:
        return [r.raw for r in self.host.servers[pcpu].firmware.store.pending_records(CMC)]


T0 = 1_764_000_000_000_000_000


@pytest.fixture
async def hosts(tmp_path: Path) -> AsyncIterator[Hosts]:
    tokens = TokenBook.generate(DOM0, OPERATOR, XEN)
    token_file = tmp_path / "tokens.json"
    tokens.save(token_file)
    host = PcpuHost([0, 1], token_book=tokens)
    await host.start()
    raws = [(i % 2, sample_raw(100 + i, record_id=1000 + i)) for i in range(6)]
    dump = tmp_path / "dump.jsonl"
    dump.write_text(
        "".join(
            dump_line(
                pcpu=pcpu,
                record_type="CMC",
                record_id=decode_record(raw).record_id,
                severity="corrected",
                created_ns=T0 + i * 200_000_000,
                raw=raw,
            )
            + "\n"
            for i, (pcpu, raw) in enumerate(raws)
        )
    )
    try:
        yield Hosts(host, token_file, dump, raws)
    finally:
        await host.stop(grace=None)


async def test_replay_command_spaces_records_onto_their_pcpus(hosts: Hosts, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.txt"
    inventory.write_text("".join(f"{p} {a}\n" for p, a in hosts.host.addresses.items()))
    result = await xenmca(
        "replay", str(hosts.dump), "--inventory", str(inventory), "--token-file",
        str(hosts.token_file), "--speed", "4", "--json", "--no-progress",
    )  # fmt: skip
    assert result.code == 0, result.err
    outcome = json.loads(result.out)
    assert {k: outcome[k] for k in ("records", "pcpus", "stored", "overflowed", "failed")} == {
        "records": 6,
        "pcpus": [0, 1],
        "stored": 6,
        "overflowed": 0,
        "failed": 0,
    }
    assert outcome["dump_span_s"] == 1.0 and outcome["elapsed_s"] >= 0.25 - 0.01
    for pcpu in (0, 1):
        given = [raw for p, raw in hosts.raws if p == pcpu]
        assert hosts.stored(pcpu) == [with_record_id(raw, i + 1) for i, raw in enumerate(given)]


async def test_replay_command_onto_one_address(hosts: Hosts) -> None:
    result = await xenmca(
        "replay", str(hosts.dump), "--pcpu", hosts.host.addresses[1], "--token-file",
        str(hosts.token_file), "--speed", "100", "--no-progress",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert result.out.startswith(f"replayed 6 records of {hosts.dump} onto pCPU at ")
    assert "stored 6, overflowed 0, not injected 0" in result.out
    assert sorted(raw[8:] for raw in hosts.stored(1)) == sorted(raw[8:] for _, raw in hosts.raws)


async def test_replay_command_dry_run_sends_nothing(hosts: Hosts) -> None:
    result = await xenmca("replay", str(hosts.dump), "--dry-run", "--speed", "2")
    assert (result.code, result.out.strip()) == (
        0,
        f"would replay 6 records of {hosts.dump} onto pCPUs 0, 1 over 0.5 s (speed 2)",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--pcpu", "0=ADDR0"),
            "the dump has records of pCPU 1, which --pcpu does not list",
        ),
        (
            ("--pcpu", "ADDR0", "--pcpu", "1=ADDR1"),
            "a --pcpu without N= takes every",
        ),
        (
            ("--speed", "0", "--pcpu", "ADDR0"),
            "argument --speed: must be a finite number above 0",
        ),
        ((), "say where the pCPUs are"),
    ],
)
async def test_replay_command_refusals_are_one_line_exit_2_and_send_nothing(
    hosts: Hosts, args: tuple[str, ...], message: str
) -> None:
    addresses = hosts.host.addresses
    argv = [a.replace("ADDR0", addresses[0]).replace("ADDR1", addresses[1]) for a in args]
    result = await xenmca("replay", str(hosts.dump), *argv, "--token-file", str(hosts.token_file))
    assert result.code == 2, result
    assert len(result.err.strip().splitlines()) == 1 and message in result.err, result.err
    assert hosts.stored(0) == hosts.stored(1) == []


async def test_replay_command_bad_dump_is_one_line_naming_the_line(
    hosts: Hosts, tmp_path: Path
) -> None:
    lines = hosts.dump.read_text().splitlines()
    broken = bytearray(hosts.raws[2][1])
    broken[60] = 3
    lines[2] = lines[2].replace(hosts.raws[2][1].hex(), broken.hex())
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    result = await xenmca(
        "replay", str(bad), "--pcpu", hosts.host.addresses[0], "--token-file",
        str(hosts.token_file),
    )  # fmt: skip
    assert result.code == 2
    assert result.err.strip() == (
        f"xenmca replay: error: {bad}:3: raw_hex: record 1 at byte 0: section at offset 40: "
        "len 3 (offset 60) is less than the 24-byte section header"
    )
    assert hosts.stored(0) == hosts.stored(1) == []


async def test_replay_command_exits_1_when_records_are_refused(
    hosts: Hosts, tmp_path: Path
) -> None:
    strangers = tmp_path / "strangers.json"
    TokenBook.generate(OPERATOR).save(strangers)  # tokens the pCPUs do not know
    result = await xenmca(
        "replay", str(hosts.dump), "--pcpu", hosts.host.addresses[0], "--token-file",
        str(strangers), "--speed", "100", "--no-progress", "--json",
    )  # fmt: skip
    assert result.code == 1, result.err
    assert {k: json.loads(result.out)[k] for k in ("stored", "failed")} == {
        "stored": 0,
        "failed": 6,
    }
    assert hosts.stored(0) == []
