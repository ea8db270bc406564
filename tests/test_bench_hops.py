"""The hop trace (xenmca.rpc.hop_trace) and the bench's `hops` section that reads it.

The analysis is checked on a hand-made timeline; the trace itself in a real process
(it is read from the environment at import, and written at exit, after SIGTERM too).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from xenmca.rpc.hop_trace import HOP_TRACE_ENV
from xenmca.testbed.bench.hops import analyse, category, read_marks, tracing

# One record of the faithful flow, its points and their offsets in microseconds.
_RECORD = [
    (0, "dom0.get.send"), (300, "xen.get.in"), (340, "xen.ipi.get.send"),
    (700, "pcpu.get.in"), (790, "pcpu.get.out"), (1000, "xen.ipi.get.reply"),
    (1070, "xen.get.out"), (1300, "dom0.get.reply"), (1330, "dom0.commit.start"),
    (1660, "dom0.commit.end"), (1700, "dom0.clear.send"), (2050, "xen.clear.in"),
    (2110, "xen.ipi.clear.send"), (2470, "pcpu.clear.in"), (2540, "pcpu.clear.out"),
    (2760, "xen.ipi.clear.reply"), (2850, "xen.clear.out"), (3100, "dom0.clear.reply"),
]  # fmt: skip
_CYCLE_US = 3500


def _timeline(records: int) -> list[tuple[int, str]]:
    return [
        ((index * _CYCLE_US + offset) * 1000, point)
        for index in range(records)
        for offset, point in _RECORD
    ]


def test_segments_fall_into_transit_commit_or_one_process() -> None:
    assert category("dom0.get.send", "xen.get.in") == "transit"
    assert category("dom0.commit.start", "dom0.commit.end") == "commit"
    assert category("dom0.get.reply", "dom0.commit.start") == "dom0"
    assert category("xen.ipi.get.reply", "xen.get.out") == "xen"
    assert category("pcpu.get.in", "pcpu.get.out") == "pcpu"


def test_the_categories_add_up_to_the_time_between_records() -> None:
    result = analyse(_timeline(100), warm_up=0.2)
    per_record = result["per_record_us"]
    # Window: from record 20's start to record 99's CLEAR reply; 80 records started in it.
    assert result["records"] == 80
    assert result["cycle_us"] == pytest.approx((79 * _CYCLE_US + 3100) / 80, abs=0.1)
    assert sum(per_record.values()) == pytest.approx(result["cycle_us"], abs=0.5)
    assert per_record["commit"] == pytest.approx(330.0)
    assert per_record["pcpu"] == pytest.approx(90 + 70)
    assert per_record["xen"] == pytest.approx(40 + 70 + 60 + 90)
    # dom0: get.reply -> commit.start, commit.end -> clear.send; the idle 400 us between
    # a CLEAR reply and the next GET (79 of the 80 records) is dom0's too.
    assert per_record["dom0"] == pytest.approx(30 + 40 + 400 * 79 / 80, abs=0.1)
    top = result["segments"][0]
    assert (top["from"], top["to"], top["median_us"]) == ("dom0.clear.reply", "dom0.get.send", 400)


def test_too_short_a_trace_is_refused() -> None:
    with pytest.raises(ValueError, match="too few traced records"):
        analyse(_timeline(3))


def test_a_traced_process_writes_its_stamps_when_it_exits_even_on_sigterm(tmp_path: Path) -> None:
    program = textwrap.dedent(
        """
        import signal, sys, time
        from xenmca.rpc import hop_trace
        # As the components do: SIGTERM ends the process normally (exit handlers run).
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        hop_trace.mark("dom0.get.send")
        hop_trace.mark("dom0.get.reply")
        print("marked", flush=True)
        if sys.argv[1] == "wait":
            time.sleep(60)
        """
    )
    for how in ("exit", "wait"):
        directory = tmp_path / how
        with tracing(directory):
            child = subprocess.Popen(
                [sys.executable, "-c", program, how], stdout=subprocess.PIPE, text=True
            )
        assert child.stdout is not None and child.stdout.readline() == "marked\n"
        if how == "wait":
            child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 0
        marks = read_marks(directory)
        assert [point for _, point in marks] == ["dom0.get.send", "dom0.get.reply"]
        assert marks[0][0] <= marks[1][0]
    assert HOP_TRACE_ENV not in os.environ  # tracing() put the environment back


def test_untraced_processes_write_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != HOP_TRACE_ENV}
    subprocess.run(
        [sys.executable, "-c", "from xenmca.rpc import hop_trace; hop_trace.mark('dom0.virq')"],
        env=env, cwd=tmp_path, check=True, timeout=30,
    )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
async def test_the_hops_section_traces_both_flows_for_real(tmp_path: Path) -> None:
    from xenmca.testbed.bench.flow import FlowShape
    from xenmca.testbed.bench.hops import measure_hops

    result = await measure_hops(tmp_path, FlowShape(pcpus=8, pcpus_per_host=4, records=300))
    skeleton, faithful = result["skeleton"], result["faithful"]
    assert skeleton["records"] >= 200 and faithful["records"] >= 200
    for side in (skeleton, faithful):
        assert sum(side["per_record_us"].values()) == pytest.approx(side["cycle_us"], rel=0.01)
        assert side["per_record_us"]["transit"] > 0 and side["per_record_us"]["commit"] > 0
    # The skeleton has no logic of its own; the faithful flow's processes do.
    assert all(faithful["per_record_us"][name] > 0 for name in ("dom0", "xen", "pcpu"))
    points = {segment["from"] for segment in faithful["segments"]}
    assert {"xen.ipi.get.send", "pcpu.get.in", "dom0.commit.start"} <= points
    assert HOP_TRACE_ENV not in os.environ


def test_rows_give_a_ratio_only_where_the_skeleton_does_the_same_work() -> None:
    from xenmca.testbed.bench import hops

    side = {"cycle_us": 2000.0, "per_record_us": {"transit": 1800.0, "commit": 200.0, "xen": 1.0}}
    faithful = {"cycle_us": 3000.0, "per_record_us": {"transit": 2000.0, "commit": 300.0}}
    faithful["per_record_us"].update(dom0=200.0, xen=300.0, pcpu=200.0)
    section = {"hops": {"skeleton": side, "faithful": faithful}}
    rows = {row.name.strip(): row for row in hops.rows(section)}
    assert rows["per record on the serial path (trace)"].ratio == 1.5
    assert rows["gRPC transit between processes"].ratio == pytest.approx(1.11)
    assert rows["dom0's durable commit"].ratio == 1.5
    inside = [rows[f"inside {what}"] for what in ("dom0", "the coordinator", "the pCPU host")]
    assert [(r.measured, r.ratio) for r in inside] == [(200.0, None), (300.0, None), (200.0, None)]
