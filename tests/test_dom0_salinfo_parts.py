"""linux-salinfo's parts on their own and through the dom0 command: the five saved slots,
the command running the policy against a real coordinator and refusing bad options in
one line, and the policies by name.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from pathlib import Path

import pytest
from dom0_salinfo_helpers import (
    CORRECTED,
    RECOVERABLE,
    inject,
    watch_firmware,
)
from flow_harness import flow_bed

from xenmca import cli
from xenmca.dom0.policies import make_policy
from xenmca.dom0.salinfo import SalinfoPolicy
from xenmca.dom0.salinfo_memory import (
    SALINFO_SAVED_SLOTS,
    DropReason,
    LogRing,
    SavedSlot,
    SavedSlots,
)
from xenmca.record.v1 import record_pb2
from xenmca.rpc.events import read_events
from xenmca.rpc.identity import DOM0


def test_five_saved_slots_shift_out_the_oldest_unless_one_is_being_read() -> None:
    ring = LogRing()

    def record(record_id: int) -> SavedSlot:
        rec = record_pb2.ErrorRecord(pcpu=0, record_id=record_id, severity=CORRECTED)
        return SavedSlot(ring.store(rec), record_id, 0, CORRECTED)

    saved = SavedSlots()
    assert [saved.save(record(i)) for i in range(1, SALINFO_SAVED_SLOTS + 1)] == [None] * 5
    dropped = saved.save(record(6))
    assert dropped is not None and dropped.reason is DropReason.SHIFTED_OUT
    assert dropped.slot.record_id == 1
    assert [s.record_id for s in saved.slots] == [2, 3, 4, 5, 6]

    # The daemon copies the oldest: 2's buffer now holds 6, 3's holds 5... only 5 and 6
    # (the last two reads) are still in the double buffer.
    copy, discarded = saved.take(ring)
    assert copy is not None and copy.record_id == 5
    assert [(d.slot.record_id, d.reason) for d in discarded] == [
        (i, DropReason.CHANGED) for i in (2, 3, 4)
    ]
    for i in (7, 8, 9):
        assert saved.save(record(i)) is None
    dropped = saved.save(record(10))  # full while slot 5 is being read: not saved
    assert dropped is not None and dropped.reason is DropReason.NOT_SAVED
    assert dropped.slot.record_id == 10
    saved.release()
    assert [s.record_id for s in saved.slots] == [6, 7, 8, 9]


async def test_dom0_command_runs_the_salinfo_policy(tmp_path: Path) -> None:
    async with flow_bed(pcpus=2, vcpu0_pcpu=0) as bed:
        watch_firmware(bed)
        tokens = tmp_path / "tokens.json"
        tokens.write_text(json.dumps({"dom0": bed.tokens.token_for(DOM0)}))
        db, events_file = tmp_path / "dom0.sqlite", tmp_path / "dom0-events.jsonl"
        script = "import sys; from xenmca import cli; sys.exit(cli.main(['dom0', *sys.argv[1:]]))"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script,
            "--xen", bed.xen_address, "--db", str(db), "--token-file", str(tokens),
            "--events", str(events_file), "--no-cpe-poll",
            "--policy", "linux-salinfo", "--salinfo-decode-delay", "0",
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await bed.watch.wait_for("dom0_attached", component="xen", within=30)
            # Recoverable: the daemon clears it in firmware only after committing it.
            await inject(bed, 1, RECOVERABLE)
            await bed.watch.wait_for("record_cleared", component="pcpu", pcpu=1, within=30)
            proc.terminate()
            _, stderr = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, stderr.decode()
        assert "policy linux-salinfo" in stderr.decode()
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT pcpu, record_id FROM records").fetchall() == [(1, 1)]
        events = read_events(events_file)
        assert events[0]["kind"] == "dom0_attached" and events[0]["policy"] == "linux-salinfo"
        assert [e["kind"] for e in events if e["kind"].startswith("salinfo_")] == ["salinfo_saved"]


def _run_dom0_command(*argv: str) -> int:
    return cli.main(["dom0", "--xen", "127.0.0.1:1", "--db", "x.db", *argv])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--policy", "linux-salinfo", "--salinfo-decode-delay", "-1"], "must be a number"),
        (["--policy", "linux-salinfo", "--salinfo-decode-delay", "nan"], "must be a number"),
        (["--salinfo-decode-delay", "0.1"], "applies only to --policy linux-salinfo"),
    ],
)
def test_dom0_command_refuses_a_bad_decode_delay_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_dom0_command(*argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("xenmca dom0: error:")


def test_dom0_command_refuses_an_unknown_policy_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _run_dom0_command("--policy", "linux")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--policy" in err


def test_policies_by_name() -> None:
    assert make_policy("xenmca").name == "xenmca"
    salinfo = make_policy("linux-salinfo", salinfo_decode_delay=0.2)
    assert isinstance(salinfo, SalinfoPolicy) and salinfo.decode_delay == 0.2
    with pytest.raises(ValueError, match="unknown dom0 policy"):
        make_policy("linux")
    with pytest.raises(ValueError, match="applies only"):
        make_policy("xenmca", salinfo_decode_delay=0.2)
