"""Calibration and warm-up against real in-process servers: round trips, commits, the floor,
the warmed channels handed to the workload once, and the plots' warm-up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from flow_harness import FlowBed, flow_bed

from xenmca.rpc.channels import open_channel
from xenmca.testbed.run.calibration import (
    CALLS,
    COMMITS,
    DISCARDED,
    _call_order,
    calibrate,
    calibration_targets,
    calibrations,
    floor_of_run,
)
from xenmca.testbed.run.phases import metrics_line
from xenmca.testbed.run.warmup import WarmChannels, warm_plots


def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_calls_alternate_between_the_coordinator_and_each_host() -> None:
    order = _call_order(["xen", "pcpu-host0", "pcpu-host1"], 8)
    assert order == ["xen", "pcpu-host0", "xen", "pcpu-host1"] * 2
    assert _call_order(["xen"], 3) == ["xen"] * 3
    assert _call_order(["pcpu-host0", "pcpu-host1"], 3) == ["pcpu-host0", "pcpu-host1"] * 1 + [
        "pcpu-host0"
    ]
    assert _call_order([], 3) == []


async def test_a_calibration_times_round_trips_and_commits(tmp_path: Path) -> None:
    async with flow_bed(pcpus=2) as bed:
        targets = calibration_targets(bed.xen_address, [bed.host.addresses[0]])
        assert targets == {"xen": bed.xen_address, "pcpu-host0": bed.host.addresses[0]}
        measured = await calibrate(open_channel, targets, tmp_path)
    assert measured.errors == ()
    assert measured.rtt_calls == CALLS and measured.commits == COMMITS
    assert set(measured.rtt_ms_by_target) == {"xen", "pcpu-host0"}
    assert measured.rtt_ms is not None and 0 < measured.rtt_ms < 1000
    assert measured.commit_ms is not None and measured.commit_ms > 0
    floor = measured.floor_ms
    assert floor is not None
    assert floor == pytest.approx(4 * measured.rtt_ms + measured.commit_ms)
    assert measured.as_fields()["floor_ms"] == round(floor, 3)
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []  # scratch db gone


async def test_a_silent_target_is_named_and_the_others_still_count(tmp_path: Path) -> None:
    async with flow_bed(pcpus=1) as bed:
        targets = {"xen": bed.xen_address, "pcpu-host0": f"127.0.0.1:{unused_port()}"}
        measured = await calibrate(open_channel, targets, tmp_path, calls=10)
    assert measured.errors == ("pcpu-host0: UNAVAILABLE",)
    assert set(measured.rtt_ms_by_target) == {"xen"} and measured.rtt_calls == 5
    assert measured.floor_ms is not None


async def test_nothing_answering_leaves_no_floor(tmp_path: Path) -> None:
    targets = {"xen": f"127.0.0.1:{unused_port()}"}
    measured = await calibrate(open_channel, targets, tmp_path, calls=4)
    assert measured.rtt_ms is None and measured.floor_ms is None
    assert measured.as_fields()["floor_ms"] is None
    assert len(measured.errors) == 1 and DISCARDED >= 1


def test_the_floor_of_a_run_is_its_slower_calibration() -> None:
    def cal(when: str, floor: float | None) -> dict[str, object]:
        return {"component": "runner", "kind": "calibration", "when": when, "floor_ms": floor}

    assert floor_of_run([cal("start", 2.0), cal("end", 3.0)]) == (3.0, "end")
    assert floor_of_run([cal("start", 4.0), cal("end", 3.0)]) == (4.0, "start")
    assert floor_of_run([cal("start", 2.0), cal("end", None)]) == (2.0, "start")
    assert floor_of_run([])[0] is None
    assert set(calibrations([cal("start", 2.0), cal("end", 3.0)])) == {"start", "end"}


@pytest.mark.xenmca(pcpus=2)
async def test_warmed_channels_are_handed_out_once_and_the_rest_closed(
    xenmca_coordinator: FlowBed,
) -> None:
    bed = xenmca_coordinator
    first, second = bed.host.addresses[0], bed.host.addresses[1]
    missing = f"127.0.0.1:{unused_port()}"
    opened: list[str] = []

    def factory(address: str) -> grpc.aio.Channel:
        opened.append(address)
        return open_channel(address)

    channels = WarmChannels(factory)
    errors = await channels.warm([first, second, first, missing])
    assert errors == [f"{missing}: UNAVAILABLE"]
    assert sorted(opened) == sorted([first, second, missing])
    warmed = channels.channel(first)
    assert warmed.get_state() == grpc.ChannelConnectivity.READY
    again = channels.channel(first)  # handed out already: a new one
    assert again is not warmed and opened.count(first) == 2
    await asyncio.gather(warmed.close(), again.close())
    await channels.close()


def test_the_plots_warm_up_draws_a_figure() -> None:
    seconds, error = warm_plots()
    assert 0 <= seconds < 120 and error is None
    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"


def test_the_metrics_line_gives_each_port_once() -> None:
    urls = {
        "pcpu-host0": "http://127.0.0.1:4001/metrics",
        "xen": "http://127.0.0.1:4002/metrics",
        "dom0": "http://127.0.0.1:4003/metrics",
    }
    assert metrics_line(urls) == (
        "metrics at http://127.0.0.1:PORT/metrics: xen 4002, dom0 4003, pcpu-host0 4001"
    )
    mixed = {"xen": "http://127.0.0.1:1/metrics", "dom0": "http://10.0.0.2:2/metrics"}
    assert metrics_line(mixed) == (
        "metrics at xen http://127.0.0.1:1/metrics, dom0 http://10.0.0.2:2/metrics"
    )
    assert metrics_line({}) == "metrics: off"
