"""The end-of-run scrape: raw text into metrics-<component>.prom, a compact summary in
results.json, and the launcher's metrics ports (one per process, in the port block)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from xenmca.rpc.metrics import start_metrics_endpoint
from xenmca.testbed.infra.launcher import LocalTestbed
from xenmca.testbed.infra.metrics_ports import TARGETS_FILE, write_targets
from xenmca.testbed.infra.metrics_scrape import (
    ENDPOINTS_EVENT,
    SCRAPED_EVENT,
    metrics_results,
    scrape_to_files,
    summarize,
)
from xenmca.testbed.infra.spec import TestbedSpec

log = logging.getLogger("test_metrics_scrape")
START_NS = 5_000_000_000


def sample_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    created = Counter("demo_records_created", "records", ["pcpu", "type"], registry=registry)
    created.labels("0", "CMC").inc(3)
    created.labels("1", "CMC").inc(4)
    created.labels("1", "CPE").inc(1)
    Gauge("demo_attached", "attached", registry=registry).set(1)
    latency = Histogram(
        "demo_latency_seconds", "latency", ["path"], buckets=(0.001, 0.01), registry=registry
    )
    latency.labels("ipi").observe(0.005)
    latency.labels("ipi").observe(0.0005)
    return registry


def test_the_summary_sums_pcpus_away_and_leaves_created_out() -> None:
    from prometheus_client import generate_latest

    summary = summarize(generate_latest(sample_registry()).decode())
    assert summary["demo_records_created_total"] == {"type=CMC": 7, "type=CPE": 1}
    assert summary["demo_attached"] == {"": 1}
    assert summary["demo_latency_seconds_bucket"] == {
        "le=0.001,path=ipi": 1,
        "le=0.01,path=ipi": 2,
        "le=+Inf,path=ipi": 2,
    }
    assert summary["demo_latency_seconds_count"] == {"path=ipi": 2}
    assert summary["demo_latency_seconds_sum"]["path=ipi"] == 0.0055
    assert not any(name.endswith("_created") for name in summary)


async def test_endpoints_are_scraped_into_files_and_summarised(tmp_path: Path) -> None:
    endpoint = start_metrics_endpoint(sample_registry(), "127.0.0.1", 0, log)
    try:
        urls = {"xen": endpoint.url, "dom0": "http://127.0.0.1:1/metrics"}
        outcomes = await scrape_to_files(urls, tmp_path)
    finally:
        await endpoint.aclose()
    assert outcomes["xen"]["file"] == "metrics-xen.prom" and outcomes["xen"]["bytes"] > 0
    assert "error" in outcomes["dom0"] and "127.0.0.1:1" in outcomes["dom0"]["error"]
    assert not (tmp_path / "metrics-dom0.prom").exists()

    events = [
        {"component": "runner", "kind": ENDPOINTS_EVENT, "t_mono_ns": START_NS, "urls": urls},
        {
            "component": "runner",
            "kind": SCRAPED_EVENT,
            "t_mono_ns": START_NS + 2_500_000_000,
            "outcomes": outcomes,
        },
    ]
    results = metrics_results(events, str(tmp_path), START_NS)
    assert results["metrics"] == urls
    scrape = results["metrics_scrape"]
    assert scrape["t_s"] == 2.5 and scrape["summed_labels"] == ["pcpu"]
    xen = scrape["components"]["xen"]
    assert xen["values"]["demo_records_created_total"] == {"type=CMC": 7, "type=CPE": 1}
    assert "values" not in scrape["components"]["dom0"]
    json.dumps(results)  # results.json can hold it


def test_a_run_without_metrics_says_so() -> None:
    assert metrics_results([], "", START_NS) == {"metrics": {}, "metrics_scrape": None}


def test_each_process_gets_a_metrics_port_of_the_block_and_its_flags(tmp_path: Path) -> None:
    bed = LocalTestbed(TestbedSpec(workdir=tmp_path, pcpus=4, pcpus_per_host=2, metrics=True))
    bed.plan()
    names = ["pcpu-host0", "pcpu-host1", "xen", "dom0"]
    assert list(bed.metrics_ports) == names
    grpc_ports = {int(a.rpartition(":")[2]) for a in bed.pcpu_addresses.values()}
    grpc_ports.add(int(bed.xen_address.rpartition(":")[2]))
    metrics_ports = list(bed.metrics_ports.values())
    assert metrics_ports == list(range(max(grpc_ports) + 1, max(grpc_ports) + 5))
    for process in bed.processes:
        port = bed.metrics_ports[process.name]
        argv = process.argv
        at = argv.index("--metrics-port")
        assert argv[at : at + 4] == ["--metrics-port", str(port), "--metrics-host", "127.0.0.1"]
        assert port in process.ports and process.listen_host == "127.0.0.1"
        assert bed.metrics_urls[process.name] == f"http://127.0.0.1:{port}/metrics"
    path = write_targets(tmp_path, bed.metrics_urls)
    assert path.name == TARGETS_FILE
    groups = json.loads(path.read_text())
    assert [g["labels"] for g in groups] == [
        {"component": "pcpu-host", "pod": "pcpu-host0"},
        {"component": "pcpu-host", "pod": "pcpu-host1"},
        {"component": "coordinator", "pod": "xen"},
        {"component": "dom0", "pod": "dom0"},
    ]
    assert groups[2]["targets"] == [f"127.0.0.1:{bed.metrics_ports['xen']}"]


def test_without_metrics_the_command_lines_are_unchanged(tmp_path: Path) -> None:
    bed = LocalTestbed(TestbedSpec(workdir=tmp_path, pcpus=2))
    bed.plan()
    assert bed.metrics_ports == {} and bed.metrics_urls == {}
    for process in bed.processes:
        assert "--metrics-port" not in process.argv
    dom0 = bed.process("dom0")
    assert dom0.ports == () and dom0.listen_host == "" and dom0.ready_file is None
