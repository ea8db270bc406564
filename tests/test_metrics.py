"""Prometheus metrics: every server's endpoint scraped over HTTP during a small run.

In-process servers on port 0 (flow_harness), each component's endpoint on
port 0, scraped with urllib on a thread; the flow is awaited on events, never
on sleeps. One real `xenmca serve pcpu` process checks the flags end to end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import socket
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from flow_harness import CMC, flow_bed
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from xenmca.cli import build_parser
from xenmca.dom0.log_store import LogStore
from xenmca.dom0.logger import Dom0Logger
from xenmca.dom0.metrics import Dom0Metrics
from xenmca.pcpu.metrics import PcpuMetrics
from xenmca.rpc.channels import open_channel
from xenmca.rpc.identity import DOM0
from xenmca.rpc.metrics import (
    LATENCY_BUCKETS,
    MetricsEndpoint,
    MetricsStartError,
    start_metrics_endpoint,
)
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.xen.metrics import XenMetrics

log = logging.getLogger("test_metrics")

TYPES = ("MCA", "INIT", "CMC", "CPE")
METRICS_LINE = re.compile(r"serving Prometheus metrics on http://127\.0\.0\.1:(\d+)/metrics")


@dataclass
class Scrape:
    """One scrape, parsed: families by name (counters without _total) and sample lookups."""

    families: dict[str, tuple[str, list[tuple[str, dict[str, str], float]]]]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        families = {
            f.name: (f.type, [(s.name, s.labels, s.value) for s in f.samples])
            for f in text_string_to_metric_families(text)
        }
        return cls(families)

    def type_of(self, family: str) -> str:
        return self.families[family][0]

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [
            (labels, value)
            for _, samples in self.families.values()
            for sample_name, labels, value in samples
            if sample_name == name
        ]

    def value(self, name: str, **labels: str) -> float:
        found = [v for lbls, v in self.samples(name) if lbls == labels]
        assert len(found) == 1, (name, labels, self.samples(name))
        return found[0]

    def label_sets(self, name: str) -> list[dict[str, str]]:
        return [labels for labels, _ in self.samples(name)]


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


async def scrape(endpoint: MetricsEndpoint) -> Scrape:
    return Scrape.parse(await asyncio.to_thread(_fetch, endpoint.url))


@asynccontextmanager
async def serving(registry: CollectorRegistry) -> AsyncIterator[MetricsEndpoint]:
    endpoint = start_metrics_endpoint(registry, "127.0.0.1", 0, log)
    try:
        assert endpoint.port != 0
        yield endpoint
    finally:
        await endpoint.aclose()


def delta(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


# --- names, types and labels ---------------------------------------------------------

PCPU_FAMILIES = {
    "xenmca_pcpu_records_created": "counter",
    "xenmca_pcpu_records_cleared": "counter",
    "xenmca_pcpu_records_overflowed": "counter",
    "xenmca_pcpu_interrupts_raised": "counter",
    "xenmca_pcpu_records_pending": "gauge",
    "xenmca_pcpu_line_masked": "gauge",
}
XEN_FAMILIES = {
    "xenmca_xen_queue_depth": "gauge",
    "xenmca_xen_in_flight": "gauge",
    "xenmca_xen_injections": "counter",
    "xenmca_xen_sal_calls": "counter",
    "xenmca_xen_retries": "counter",
    "xenmca_xen_call_failures": "counter",
    "xenmca_xen_ipi_latency_seconds": "histogram",
    "xenmca_xen_throttle_mode": "gauge",
    "xenmca_xen_lines_polling": "gauge",
    "xenmca_xen_polls": "counter",
    "xenmca_xen_polled_records": "counter",
    "xenmca_xen_pcpus_connected": "gauge",
    "xenmca_xen_dom0_attached": "gauge",
    "xenmca_xen_interrupts": "counter",
    "xenmca_xen_records_copied": "counter",
    "xenmca_xen_records_cleared": "counter",
}
DOM0_FAMILIES = {
    "xenmca_dom0_records_logged": "counter",
    "xenmca_dom0_duplicates_dropped": "counter",
    "xenmca_dom0_commit_latency_seconds": "histogram",
    "xenmca_dom0_gets": "counter",
    "xenmca_dom0_clears": "counter",
    "xenmca_dom0_polls": "counter",
    "xenmca_dom0_commit_errors": "counter",
    "xenmca_dom0_attached": "gauge",
    "xenmca_dom0_log_writable": "gauge",
}


def assert_families(scraped: Scrape, expected: dict[str, str]) -> None:
    for name, kind in expected.items():
        assert name in scraped.families, name
        assert scraped.type_of(name) == kind, name


# --- the whole flow: pCPUs, coordinator and dom0 scraped before and after ---------------


async def test_every_endpoint_counts_a_small_run(tmp_path: Path) -> None:
    local, remote = 2, 3  # CMC records on vCPU0's pCPU 0 and on pCPU 1
    async with flow_bed(pcpus=2, vcpu0_pcpu=0) as bed:
        store = await LogStore.open(tmp_path / "dom0.sqlite")
        logger = Dom0Logger(
            bed.xen_address, store, token=bed.tokens.token_for(DOM0), polled_types={}
        )
        dom0_metrics = Dom0Metrics(logger)
        async with (
            serving(PcpuMetrics(bed.host).registry) as pcpu_endpoint,
            serving(XenMetrics(bed.coordinator).registry) as xen_endpoint,
            serving(dom0_metrics.registry) as dom0_endpoint,
        ):
            pcpu0, xen0, dom00 = [
                await scrape(e) for e in (pcpu_endpoint, xen_endpoint, dom0_endpoint)
            ]
            assert_families(pcpu0, PCPU_FAMILIES)
            assert_families(xen0, XEN_FAMILIES)
            assert_families(dom00, DOM0_FAMILIES)
            assert sorted(
                (s["pcpu"], s["type"])
                for s in pcpu0.label_sets("xenmca_pcpu_records_created_total")
            ) == sorted((str(p), t) for p in range(2) for t in TYPES)
            assert xen0.value("xenmca_xen_pcpus_connected") == 2
            assert xen0.value("xenmca_xen_dom0_attached") == 0
            assert dom00.value("xenmca_dom0_attached") == 0

            await bed.inject(0, count=local)
            await bed.inject(1, count=remote)
            # Queued before dom0 attaches: exactly one injection per record follows.
            await bed.watch.wait_for("interrupt_received", count=local + remote)
            queued = await scrape(xen_endpoint)
            assert queued.value("xenmca_xen_queue_depth", type="CMC") == 2
            assert queued.value("xenmca_xen_in_flight", type="CMC") == 0
            pending = await scrape(pcpu_endpoint)
            assert pending.value("xenmca_pcpu_records_pending", pcpu="1", type="CMC") == remote

            await logger.start()
            try:
                await bed.watch.until(
                    lambda: bed.coordinator.counters.records_cleared >= local + remote
                )
                pcpu1, xen1, dom01 = [
                    await scrape(e) for e in (pcpu_endpoint, xen_endpoint, dom0_endpoint)
                ]
            finally:
                await logger.stop()
        await store.close()

    # pCPU host
    for pcpu, count in (("0", local), ("1", remote)):
        labels = {"pcpu": pcpu, "type": "CMC"}
        assert delta(pcpu0, pcpu1, "xenmca_pcpu_records_created_total", **labels) == count
        assert delta(pcpu0, pcpu1, "xenmca_pcpu_records_cleared_total", **labels) == count
        assert delta(pcpu0, pcpu1, "xenmca_pcpu_interrupts_raised_total", **labels) == count
        assert pcpu1.value("xenmca_pcpu_records_overflowed_total", **labels) == 0
        assert pcpu1.value("xenmca_pcpu_records_pending", **labels) == 0
        assert pcpu1.value("xenmca_pcpu_line_masked", **labels) == 0
        assert pcpu1.value("xenmca_pcpu_records_created_total", pcpu=pcpu, type="CPE") == 0

    # coordinator
    total = local + remote
    assert delta(xen0, xen1, "xenmca_xen_injections_total") == total
    assert delta(xen0, xen1, "xenmca_xen_records_copied_total") == total
    assert delta(xen0, xen1, "xenmca_xen_records_cleared_total") == total
    for call in ("get", "clear"):
        for path, count in (("local", local), ("ipi", remote)):
            assert delta(xen0, xen1, "xenmca_xen_sal_calls_total", call=call, path=path) == count
            assert (
                delta(xen0, xen1, "xenmca_xen_ipi_latency_seconds_count", call=call, path=path)
                == count
            )
            inf = {"call": call, "path": path, "le": "+Inf"}
            assert xen1.value("xenmca_xen_ipi_latency_seconds_bucket", **inf) == count
            assert xen1.value("xenmca_xen_ipi_latency_seconds_sum", call=call, path=path) > 0
    buckets = {
        float(labels["le"])
        for labels in xen1.label_sets("xenmca_xen_ipi_latency_seconds_bucket")
        if labels["le"] != "+Inf"
    }
    assert min(buckets) == 0.0001 and max(buckets) == 5.0
    assert xen1.value("xenmca_xen_retries_total") == 0
    assert xen1.value("xenmca_xen_call_failures_total") == 0
    assert xen1.value("xenmca_xen_queue_depth", type="CMC") == 0
    assert xen1.value("xenmca_xen_in_flight", type="CMC") == 0
    assert {labels["type"] for labels in xen1.label_sets("xenmca_xen_queue_depth")} == set(TYPES)
    assert xen1.value("xenmca_xen_dom0_attached") == 1
    assert xen1.label_sets("xenmca_xen_throttle_mode") == []  # no line ever left interrupt mode
    assert xen1.value("xenmca_xen_lines_polling") == 0

    # dom0
    assert delta(dom00, dom01, "xenmca_dom0_records_logged_total") == total
    assert dom01.value("xenmca_dom0_duplicates_dropped_total") == 0
    assert delta(dom00, dom01, "xenmca_dom0_gets_total") == total
    assert delta(dom00, dom01, "xenmca_dom0_clears_total") == total
    assert dom01.value("xenmca_dom0_polls_total") == 0
    assert delta(dom00, dom01, "xenmca_dom0_commit_latency_seconds_count") == total
    assert dom01.value("xenmca_dom0_commit_latency_seconds_bucket", le="+Inf") == total
    assert dom01.value("xenmca_dom0_attached") == 1
    assert dom01.value("xenmca_dom0_log_writable") == 1
    assert dom01.value("xenmca_dom0_commit_errors_total") == 0


async def test_throttle_mode_series_only_for_lines_that_left_interrupt_mode() -> None:
    storm = 1
    async with (
        flow_bed(pcpus=3, vcpu0_pcpu=0) as bed,  # throttle preset "fast"
        serving(XenMetrics(bed.coordinator).registry) as xen_endpoint,
        serving(PcpuMetrics(bed.host).registry) as pcpu_endpoint,
    ):
        await bed.inject(storm, count=bed.coordinator.config.throttle.history_length)
        await bed.watch.wait_for("line_masked", pcpu=storm)
        polling, masked = await scrape(xen_endpoint), await scrape(pcpu_endpoint)
        # The CMC poll finds nothing new, so the line goes back to interrupt mode.
        await bed.watch.wait_for("line_unmasked", pcpu=storm)
        quiet, unmasked = await scrape(xen_endpoint), await scrape(pcpu_endpoint)

    assert polling.label_sets("xenmca_xen_throttle_mode") == [{"pcpu": "1", "type": "CMC"}]
    assert polling.value("xenmca_xen_throttle_mode", pcpu="1", type="CMC") == 1
    assert polling.value("xenmca_xen_lines_polling") == 1
    assert masked.value("xenmca_pcpu_line_masked", pcpu="1", type="CMC") == 1
    assert masked.value("xenmca_pcpu_line_masked", pcpu="0", type="CMC") == 0
    # The line stays listed (it left interrupt mode once), now at 0.
    assert quiet.value("xenmca_xen_throttle_mode", pcpu="1", type="CMC") == 0
    assert quiet.value("xenmca_xen_lines_polling") == 0
    assert quiet.value("xenmca_xen_polls_total") >= 1
    assert unmasked.value("xenmca_pcpu_line_masked", pcpu="1", type="CMC") == 0


async def test_each_process_registry_is_its_own() -> None:
    async with flow_bed(pcpus=1) as bed:
        first, second = XenMetrics(bed.coordinator), PcpuMetrics(bed.host)
        again = XenMetrics(bed.coordinator)  # a second registry may hold the same names
        assert first.registry is not again.registry
        assert b"xenmca_xen_injections_total" in generate_latest(first.registry)
        assert b"xenmca_pcpu_records_created_total" in generate_latest(second.registry)
    assert b"xenmca_" not in generate_latest(REGISTRY)


async def test_a_taken_metrics_port_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsStartError, match=rf"127\.0\.0\.1:{port}"):
            MetricsEndpoint(CollectorRegistry(), "127.0.0.1", port)


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "pcpu", "--pcpu", "0"],
        ["serve", "xen", "--pcpu", "0=127.0.0.1:1"],
        ["dom0", "--xen", "127.0.0.1:1", "--db", "log.sqlite"],
    ],
    ids=["pcpu", "xen", "dom0"],
)
def test_every_server_takes_the_metrics_flags(argv: list[str]) -> None:
    parser = build_parser()
    default = parser.parse_args(argv)
    assert default.metrics_port is None and default.metrics_host == "127.0.0.1"
    given = parser.parse_args([*argv, "--metrics-port", "0", "--metrics-host", "0.0.0.0"])
    assert given.metrics_port == 0 and given.metrics_host == "0.0.0.0"
    with pytest.raises(SystemExit):
        parser.parse_args([*argv, "--metrics-port", "70000"])


# --- a real `xenmca serve pcpu` process -------------------------------------------------


async def _metrics_port_from_log(process: asyncio.subprocess.Process, seen: list[str]) -> int:
    """Read the process's log (stderr) line by line until it names its metrics port."""
    assert process.stderr is not None
    async with asyncio.timeout(20):
        while line := (await process.stderr.readline()).decode():
            seen.append(line)
            found = METRICS_LINE.search(line)
            if found:
                return int(found.group(1))
    raise AssertionError(f"serve logged no metrics port: {''.join(seen)}")


async def _ready(path: Path, process: asyncio.subprocess.Process) -> dict[str, str]:
    async with asyncio.timeout(20):
        while not await asyncio.to_thread(path.exists):
            assert process.returncode is None, "serve exited"
            await asyncio.sleep(0.02)
    return dict(json.loads(await asyncio.to_thread(path.read_text)))


@pytest.mark.slow
async def test_serve_pcpu_logs_its_metrics_port_and_serves_it(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "xenmca.cli", "serve", "pcpu", "--pcpus", "0-1"],
        *["--base-port", "0", "--metrics-port", "0", "--ready-file", str(ready)],
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    seen: list[str] = []
    try:
        port = await _metrics_port_from_log(process, seen)
        addresses = await _ready(ready, process)
        url = f"http://127.0.0.1:{port}/metrics"
        before = Scrape.parse(await asyncio.to_thread(_fetch, url))
        assert sorted(
            (s["pcpu"], s["type"]) for s in before.label_sets("xenmca_pcpu_records_created_total")
        ) == sorted((str(p), t) for p in range(2) for t in TYPES)
        channel = open_channel(addresses["1"])
        try:
            await sal_grpc.SalServiceStub(channel).InjectError(
                sal_pb2.InjectErrorRequest(type=CMC, count=3)  # type: ignore[arg-type]
            )
        finally:
            await channel.close()
        after = Scrape.parse(await asyncio.to_thread(_fetch, url))
        assert after.value("xenmca_pcpu_records_created_total", pcpu="1", type="CMC") == 3
        assert after.value("xenmca_pcpu_records_pending", pcpu="1", type="CMC") == 3
        assert after.value("xenmca_pcpu_records_created_total", pcpu="0", type="CMC") == 0
        process.send_signal(signal.SIGTERM)
        assert process.stderr is not None
        rest = (await asyncio.wait_for(process.stderr.read(), 20)).decode()
        assert await asyncio.wait_for(process.wait(), 20) == 0
        log_lines = "".join(seen) + rest
        assert len([line for line in log_lines.splitlines() if "metrics" in line]) == 1, log_lines
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_latency_buckets_span_a_tenth_of_a_millisecond_to_five_seconds() -> None:
    assert LATENCY_BUCKETS[0] == 0.0001 and LATENCY_BUCKETS[-1] == 5.0
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)
