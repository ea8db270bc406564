"""Prometheus metrics of dom0's logger: counters and states read at scrape time, commits timed.

Counters are this process's totals since it started (Prometheus handles the
reset at a restart); the log's own persisted duplicate count is
``xenmca log summary``'s business.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from xenmca.dom0.logger import Dom0Logger
from xenmca.rpc.metrics import LATENCY_BUCKETS, LoopReader

COUNTERS: tuple[tuple[str, str, str], ...] = (
    # (metric name without _total, Dom0Counters field, help)
    (
        "xenmca_dom0_records_logged",
        "records_logged",
        "New records committed to the durable log.",
    ),
    (
        "xenmca_dom0_duplicates_dropped",
        "duplicates_dropped",
        "Records delivered again (same pCPU and record id) and not stored twice.",
    ),
    ("xenmca_dom0_gets", "gets", "Trapped SAL_GET_STATE_INFO calls made."),
    ("xenmca_dom0_clears", "clears", "Trapped SAL_CLEAR_STATE_INFO calls made (after commit)."),
    ("xenmca_dom0_polls", "polls", "Polls of polled types (CPE) made."),
    ("xenmca_dom0_interrupts", "interrupts", "Virtual interrupts received on vCPU0."),
    ("xenmca_dom0_attaches", "attaches", "AttachDom0 streams opened."),
    (
        "xenmca_dom0_unreachable",
        "unreachable",
        "GET or CLEAR answered -3: the record's pCPU was unreachable.",
    ),
    ("xenmca_dom0_call_errors", "call_errors", "Calls to the coordinator that failed."),
    (
        "xenmca_dom0_commit_errors",
        "commit_errors",
        "Commits to the log that failed (the record was not cleared).",
    ),
)


GAUGES: tuple[tuple[str, str], ...] = (
    # (metric name, help); read_logger gives their values by name
    (
        "xenmca_dom0_attached",
        "1 while dom0 has an AttachDom0 stream open to the coordinator, else 0.",
    ),
    (
        "xenmca_dom0_log_writable",
        "1 while dom0's log takes commits; 0 from a failed commit until one succeeds again "
        "(records stay pending in firmware meanwhile).",
    ),
)


def read_logger(logger: Dom0Logger) -> tuple[dict[str, int], dict[str, int]]:
    """(counter values by Dom0Counters field, gauge values by metric name)."""
    counters = logger.counters
    gauges = {
        "xenmca_dom0_attached": int(logger.attached.is_set()),
        "xenmca_dom0_log_writable": int(logger.log_health.writable),
    }
    return {field: getattr(counters, field) for _, field, _ in COUNTERS}, gauges


class Dom0Collector:
    """dom0's counters, attachment and log state, read from the logger at scrape time."""

    def __init__(self, logger: Dom0Logger, reader: LoopReader) -> None:
        self._logger = logger
        self._reader = reader

    def describe(self) -> Iterator[Metric]:
        for name, _, documentation in COUNTERS:
            yield CounterMetricFamily(name, documentation)
        for name, documentation in GAUGES:
            yield GaugeMetricFamily(name, documentation)

    def collect(self) -> Iterator[Metric]:
        counters, gauges = self._reader(lambda: read_logger(self._logger))
        for name, field, documentation in COUNTERS:
            yield CounterMetricFamily(name, documentation, value=counters[field])
        for name, documentation in GAUGES:
            yield GaugeMetricFamily(name, documentation, value=gauges[name])


class Dom0Metrics:
    """A registry of its own with dom0's metrics; times every commit to the log.

    Create on the logger's event loop before ``logger.start()`` (the handler
    takes the logger's commit observer when it starts).
    """

    def __init__(self, logger: Dom0Logger, reader: LoopReader | None = None) -> None:
        self.registry = CollectorRegistry()
        self.commit_latency = Histogram(
            "xenmca_dom0_commit_latency_seconds",
            "Time of one durable commit of a record to dom0's SQLite log (fsync included).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(Dom0Collector(logger, reader or LoopReader()))
        logger.commit_observer = self.commit_latency.observe
