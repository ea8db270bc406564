"""`xenmca bench`: smoke runs of its pieces; figures are never asserted, only their shape."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from xenmca.dom0.log_store import LogStore
from xenmca.record.v1 import record_pb2
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.testbed.bench import suite as bench_suite
from xenmca.testbed.bench.floor import (
    floor_records_per_s,
    measure_commit,
    measure_rtt,
    sample_reply,
)
from xenmca.testbed.bench.flow import breakdown, spread, wait_logged
from xenmca.testbed.bench.report import Row, build_rows, machine_info
from xenmca.testbed.bench.scale import raise_open_files_limit
from xenmca.testbed.bench.suite import SECTIONS, UnknownSection, resolve, run_bench

ROW_FIELDS = {"section", "name", "unit", "measured", "target", "ratio", "met", "note"}


def test_the_floor_reply_is_an_encoded_record_with_one_processor_section() -> None:
    reply = sal_pb2.GetStateInfoResponse.FromString(sample_reply())
    assert reply.record.type == record_pb2.RECORD_TYPE_CMC
    assert len(reply.record.sections) == 1
    assert reply.record.sections[0].WhichOneof("body") == "processor"
    assert len(reply.record.raw) > 40


async def test_the_round_trip_floor_is_a_positive_time_between_two_processes() -> None:
    rtt = await measure_rtt(calls=20, warmup=5)
    assert rtt["n"] == 20
    assert 0 < rtt["min_ms"] <= rtt["p50_ms"] <= rtt["p99_ms"]
    assert rtt["mean_ms"] > 0
    assert rtt["reply_bytes"] == len(sample_reply())
    assert 0 < rtt["request_bytes"] <= 16


async def test_the_commit_floor_is_positive_and_leaves_no_file(tmp_path: Path) -> None:
    commit = await measure_commit(tmp_path, commits=5, warmup=1)
    assert commit["n"] == 5 and commit["p50_ms"] > 0 and commit["blob_bytes"] == 1024
    assert not any(tmp_path.glob("floor-commit*"))  # noqa: ASYNC240 - a test's own tmp_path
    assert floor_records_per_s(0.5, 0.3) == pytest.approx(1000 / 2.3)


async def test_waiting_for_the_log_reads_dom0s_file_and_times_out_naming_the_count(
    tmp_path: Path,
) -> None:
    db = tmp_path / "dom0.sqlite"
    reply = sal_pb2.GetStateInfoResponse.FromString(sample_reply())
    async with await LogStore.open(db) as store:
        await wait_logged(db, 0, within=1.0)
        for record_id in (1, 2):
            record = record_pb2.ErrorRecord()
            record.CopyFrom(reply.record)
            record.record_id = record_id
            assert await store.commit(record)
        await wait_logged(db, 2, within=5.0, poll=0.01)
        with pytest.raises(TimeoutError, match="only 2 of 3 records logged"):
            await wait_logged(db, 3, within=0.1, poll=0.02)


def test_sections_pull_in_what_they_need_and_unknown_names_are_refused() -> None:
    assert resolve(None) == list(SECTIONS)
    assert resolve(["latency"]) == ["floors", "throughput", "latency"]
    assert resolve(["scale", "storm"]) == ["storm", "scale"]
    with pytest.raises(UnknownSection, match="known: floors"):
        resolve(["floors", "warp"])


def test_records_are_spread_evenly_and_the_machine_is_described() -> None:
    counts = spread(10, 4)
    assert counts == {0: 3, 1: 3, 2: 2, 3: 2}
    machine = machine_info()
    assert machine["cpu_count"] >= 1 and machine["cpu_model"] and machine["python"]
    assert machine["grpcio"] and machine["protobuf"]
    soft, _ = raise_open_files_limit(64)
    assert soft >= 64


def test_breakdown_pairs_dom0_and_coordinator_events() -> None:
    def ev(kind: str, t: int, **fields: Any) -> dict[str, Any]:
        return {
            "kind": kind,
            "t_mono_ns": t,
            "pcpu": 1,
            "record_id": fields.pop("rid", 1),
            **fields,
        }

    dom0 = [
        ev("record_read", 0, get_ms=2.0),
        ev("record_committed", 1, commit_ms=1.0),
        ev("record_clear_requested", 2_000_000),
        ev("record_cleared", 5_000_000),
        ev("record_read", 6_000_000, rid=2, get_ms=2.0),
        ev("record_committed", 7_000_000, rid=2, commit_ms=1.0),
        ev("record_clear_requested", 8_000_000, rid=2),
        ev("record_cleared", 9_000_000, rid=2),
    ]
    xen = [{"kind": "get_ipi", "ms": 1.5}, {"kind": "clear_ipi", "ms": 0.5}]
    figures = breakdown(dom0, xen)
    assert figures["records"] == 2
    assert figures["dom0_clear_ms_mean"] == pytest.approx(2.0)
    assert figures["cycle_ms_mean"] == pytest.approx(4.0)
    assert figures["xen_get_ipi_ms_mean"] == 1.5 and figures["xen_get_local_ms_mean"] is None


def test_rows_cover_every_target_even_with_nothing_measured() -> None:
    rows = build_rows({})
    assert {row.section for row in rows} == set(SECTIONS)
    assert all(row.measured is None and row.met is None for row in rows)
    assert all(set(row.as_dict()) == ROW_FIELDS for row in rows)


def _fake_figures() -> dict[str, Any]:
    floor = {
        "rtt": {"p50_ms": 0.5, "mean_ms": 0.6},
        "commit": {"p50_ms": 0.3, "mean_ms": 0.4},
        "records_per_s": 434.8,
    }
    flow = {"records_per_s": 350.0, "breakdown": {}}
    return {
        "floors": floor,
        "throughput": flow,
        "pipelined": {**flow, "records_per_s": 500.0},
        "latency": {"p50_ms": 3.0, "p99_ms": 4.5, "offered_records_per_s": 175.0},
        "storm": {"p99_ratio": 1.2, "storm_rate": 20000.0},
        "skeleton": {
            "skeleton_records_per_s": 400.0,
            "faithful_records_per_s": 300.0,
            "faithful_over_skeleton": 0.75,
            "skeleton_runs": [{"cpu_ms_per_record": {"pcpu": 1.0, "xen": 1.5, "dom0": 1.0}}],
            "faithful_runs": [{"cpu_ms_per_record": {"pcpu-host0": 2.0, "xen": 3.0}}],
        },
        "hops": {
            "skeleton": {"cycle_us": 2500.0, "per_record_us": {"transit": 2250.0, "commit": 250.0}},
            "faithful": {"cycle_us": 3500.0, "per_record_us": {"transit": 2400.0, "xen": 350.0}},
        },
        "scale": {
            "pcpus": 8,
            "hosts": 2,
            "startup_s": 1.0,
            "memory": {"host_rss_kib_per_pcpu": 90.0, "coordinator_rss_kib_per_pcpu": 80.0},
            "bare": {"rss_kib_per_server": 60.0, "rss_kib_per_server_above_baseline": 20.0},
            "idle": {"coordinator_cpu_percent": 1.0},
            "conservation": {"logged": 8, "lost": 0, "holds": True},
        },
    }


async def test_a_run_has_every_section_rows_and_machine(monkeypatch, tmp_path: Path) -> None:
    fakes = _fake_figures()

    async def fake_floors(directory: Path, *, rtt_calls: int, commits: int) -> dict[str, Any]:
        return json.loads(json.dumps(fakes["floors"]))

    async def fake_throughput(where: Path, shape: Any, *, pipelined: bool = False) -> dict:
        return dict(fakes["pipelined" if pipelined else "throughput"])

    async def fake_latency(where: Path, shape: Any, rate: float, *, seconds: float) -> dict:
        assert rate == pytest.approx(175.0)  # half the faithful throughput
        return dict(fakes["latency"])

    async def fake_storm(where: Path, *, pcpus: int, seconds: float) -> dict:
        return dict(fakes["storm"])

    async def fake_scale(where: Path, **sizes: Any) -> dict:
        return json.loads(json.dumps(fakes["scale"]))

    async def fake_interleaved(where: Path, shape: Any, rounds: int) -> dict:
        assert rounds == 2  # skeleton, faithful, skeleton, faithful
        return json.loads(json.dumps(fakes["skeleton"]))

    async def fake_hops(where: Path, shape: Any) -> dict:
        return json.loads(json.dumps(fakes["hops"]))

    monkeypatch.setattr(bench_suite, "measure_floors", fake_floors)
    monkeypatch.setattr(bench_suite, "measure_interleaved", fake_interleaved)
    monkeypatch.setattr(bench_suite, "measure_hops", fake_hops)
    monkeypatch.setattr(bench_suite, "measure_throughput", fake_throughput)
    monkeypatch.setattr(bench_suite, "measure_latency", fake_latency)
    monkeypatch.setattr(bench_suite, "measure_storm_isolation", fake_storm)
    monkeypatch.setattr(bench_suite, "measure_scale", fake_scale)
    seen: list[tuple[str, str]] = []

    result = await run_bench(tmp_path, quick=True, progress=lambda n, w: seen.append((n, w)))

    json.dumps(result)  # JSON-ready
    assert set(result["sections"]) == set(SECTIONS)
    assert all("section_s" in result["sections"][name] for name in SECTIONS)
    floors = result["sections"]["floors"]
    assert len(floors["samples"]) == 4  # at the start and before each flow section
    assert floors["rtt_p50_ms"] == 0.5 and floors["records_per_s"] == pytest.approx(434.8)
    rows = [Row(**row) for row in result["rows"]]
    by_name = {row.name: row for row in rows}
    assert by_name["faithful flow throughput"].ratio == pytest.approx(0.8, abs=0.01)
    assert by_name["faithful flow throughput"].met is True
    assert by_name["pipelined flow throughput"].met is False
    assert by_name["faithful / skeleton (interleaved)"].measured == 0.75
    assert by_name["faithful / skeleton (interleaved)"].met is False
    assert by_name["pipelined / skeleton"].ratio == pytest.approx(1.25)  # 500 / 400
    assert by_name["CPU per record: skeleton"].measured == pytest.approx(3.5)
    assert by_name["CPU per record: faithful"].measured == pytest.approx(5.0)
    assert "bare skeleton on asyncio's own loop" not in by_name  # the fake ran no such round
    assert by_name["per record on the serial path (trace)"].ratio == pytest.approx(1.4)
    assert by_name["  inside the coordinator"].measured == 350.0
    assert by_name["latency inject->durable p99 at half load"].ratio == pytest.approx(9.0)
    assert by_name["pCPU hosts' RSS per pCPU"].met is True
    assert by_name["bare gRPC servers' RSS per server, same hosts"].measured == 60.0
    assert by_name["pCPU hosts' RSS per pCPU / bare gRPC servers'"].measured == 1.5
    assert {"cpu_count", "cpu_model", "python", "grpcio"} <= set(result["machine"])
    assert [name for name, what in seen if what == "running"] == list(SECTIONS)


async def test_a_failing_section_is_reported_and_the_rest_still_run(
    monkeypatch, tmp_path: Path
) -> None:
    async def broken_storm(where: Path, **_: Any) -> dict:
        raise RuntimeError("no storm today")

    async def fake_scale(where: Path, **_: Any) -> dict:
        return {"pcpus": 4}

    monkeypatch.setattr(bench_suite, "measure_storm_isolation", broken_storm)
    monkeypatch.setattr(bench_suite, "measure_scale", fake_scale)
    result = await run_bench(tmp_path, quick=True, only=["storm", "scale"])
    assert "no storm today" in result["sections"]["storm"]["error"]
    assert result["sections"]["scale"]["pcpus"] == 4
    assert result["sections"]["floors"] == {"skipped": True}


def test_the_cli_runs_one_cheap_section_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "xenmca.cli",
            "bench",
            "--quick",
            "--only",
            "floors",
            "--json-out",
            str(out),
            "--markdown",
            str(tmp_path / "bench.md"),
            "--workdir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    assert "floor: bare unary round trip p50" in done.stdout
    result = json.loads(out.read_text())
    assert set(result["sections"]) == set(SECTIONS)
    assert result["selected"] == ["floors"]
    floors = result["sections"]["floors"]
    assert floors["rtt_p50_ms"] > 0 and floors["commit_p50_ms"] > 0
    assert floors["records_per_s"] > 0
    assert all(result["sections"][name] == {"skipped": True} for name in SECTIONS[1:])
    assert all(set(row) == ROW_FIELDS for row in result["rows"])
    table = (tmp_path / "bench.md").read_text().splitlines()
    assert table[0].startswith("| benchmark | measured |")
    assert any(line.startswith("| floor: bare unary round trip p50 |") for line in table)
    assert len([line for line in table if line.startswith("| ")]) == len(result["rows"]) + 1


def test_the_cli_refuses_an_unknown_section() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "xenmca.cli", "bench", "--only", "everything"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown section everything" in done.stderr


@pytest.mark.parametrize("kind", ["a file in it", "a file"])
def test_the_cli_refuses_a_workdir_that_is_not_new_or_empty(tmp_path: Path, kind: str) -> None:
    # A second run in the same directory would reopen the first run's dom0 log and
    # count its rows: refused before anything runs, and nothing in it touched.
    workdir = tmp_path / "work"
    if kind == "a file":
        workdir.write_text("mine")
    else:
        workdir.mkdir()
        (workdir / "dom0.sqlite").write_text("earlier run")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "xenmca.cli",
            "bench",
            "--only",
            "floors",
            "--workdir",
            str(workdir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--workdir" in lines[0] and str(workdir) in lines[0]
    if kind == "a file":
        assert workdir.read_text() == "mine"
    else:
        assert [p.name for p in workdir.iterdir()] == ["dom0.sqlite"]


async def test_the_skeleton_moves_every_record_through_three_processes(tmp_path: Path) -> None:
    # The bare flow for real (no faithful run): every record read, committed and cleared.
    from xenmca.testbed.bench.skeleton import measure_skeleton, record_size

    size = record_size()
    assert 100 < size < 1000  # a CMC ErrorRecord as GetStateInfo returns it
    figures = await measure_skeleton(tmp_path, records=50, size=size)
    assert figures["records"] == 50 and figures["records_per_s"] > 0
    assert figures["event_loop"] == "uvloop"  # the components' loop: like for like
    assert set(figures["cpu_ms_per_record"]) == {"pcpu", "xen", "dom0"}
    with sqlite3.connect(tmp_path / "skeleton.sqlite") as log:
        rows = log.execute("SELECT raw FROM records").fetchall()
    ids = [int.from_bytes(raw[:8], "little") for (raw,) in rows]
    assert ids == list(range(50))  # each once, in order: CLEAR reached the pCPU every time


def test_the_skeleton_on_asyncio_s_own_loop_is_reported_beside_the_like_for_like_one() -> None:
    from xenmca.testbed.bench import skeleton

    section = {
        "event_loop": "uvloop",
        "skeleton_records_per_s": 460.0,
        "faithful_over_skeleton": 0.65,
        "skeleton_asyncio_records_per_s": 410.0,
        "faithful_over_skeleton_asyncio": 0.73,
        "skeleton_runs": [],
        "faithful_runs": [],
    }
    by_name = {row.name: row for row in skeleton.rows({"skeleton": section})}
    assert by_name["bare skeleton of the same hops"].note.endswith("; uvloop")
    assert by_name["bare skeleton on asyncio's own loop"].measured == 410.0
    stock = by_name["faithful / skeleton on asyncio's loop"]
    assert (stock.measured, stock.met, stock.note) == (0.73, None, "faithful on uvloop")
    # The verdict stays on the like-for-like ratio.
    assert by_name["faithful / skeleton (interleaved)"].met is False
