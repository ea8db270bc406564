"""Prometheus metrics of the coordinator: queues, counters, lines and links read at scrape time,
and the SAL calls it makes on pCPUs (counted and timed as they finish, via SalCaller's observer).

Throttle mode is exported only for lines that ever left interrupt mode (or poll
from the start), so thousands of quiet pCPUs add no series; the number of
lines polling now is one gauge.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from xenmca.rpc.metrics import LATENCY_BUCKETS, LoopReader
from xenmca.vocab import type_name
from xenmca.xen.coordinator import Coordinator
from xenmca.xen.throttle import Mode

CALLS = ("get", "clear")
PATHS = ("local", "ipi")

COUNTERS: tuple[tuple[str, str, str], ...] = (
    # (metric name without _total, Counters field, help)
    ("xenmca_xen_interrupts", "interrupts", "Interrupts received from pCPUs."),
    ("xenmca_xen_injections", "injections", "Virtual interrupts injected into dom0 vCPU0."),
    ("xenmca_xen_retries", "retries", "Extra attempts of local or IPI SAL calls after a failure."),
    (
        "xenmca_xen_call_failures",
        "call_failures",
        "SAL calls on a pCPU that failed after all retries (the entry is kept).",
    ),
    ("xenmca_xen_records_copied", "records_copied", "Records copied to dom0 (trapped GET)."),
    ("xenmca_xen_records_cleared", "records_cleared", "Records cleared on dom0's request."),
    (
        "xenmca_xen_requeues",
        "requeues",
        "Entries sent to the tail after CLEAR because their pCPU had more records.",
    ),
    ("xenmca_xen_refused_calls", "refused_calls", "Trapped calls refused: the caller is not dom0."),
    ("xenmca_xen_polls", "polls", "Polls of pCPUs made for lines in polling mode."),
    ("xenmca_xen_polled_records", "polled_records", "Records those polls counted as found."),
    (
        "xenmca_xen_virqs_coalesced",
        "virqs_coalesced",
        "pCPU interrupts whose virtual interrupt coalesced into one already pending.",
    ),
)


@dataclass(frozen=True, slots=True)
class CoordinatorSample:
    """The coordinator's state as read at scrape time (plain values only)."""

    counters: dict[str, int]
    queue_depth: list[tuple[str, int]]
    in_flight: list[tuple[str, int]]
    throttled_lines: list[tuple[str, str, int]]
    """(pCPU, type, 1 polling / 0 interrupt) of lines that ever left interrupt mode."""
    lines_polling: int
    pcpus: int
    pcpus_connected: int
    dom0_attached: int


def read_coordinator(coordinator: Coordinator) -> CoordinatorSample:
    counters = coordinator.counters
    throttled = []
    polling = 0
    for pcpu, record_type, mode in coordinator.poller.throttled_lines():
        is_polling = mode is Mode.POLLING
        polling += is_polling
        throttled.append((str(pcpu), type_name(record_type), int(is_polling)))
    throttled.sort(key=lambda row: (int(row[0]), row[1]))
    return CoordinatorSample(
        counters={field: getattr(counters, field) for _, field, _ in COUNTERS},
        queue_depth=[(type_name(t), len(q)) for t, q in coordinator.queues.items()],
        in_flight=[
            (type_name(t), int(q.in_flight is not None)) for t, q in coordinator.queues.items()
        ],
        throttled_lines=throttled,
        lines_polling=polling,
        pcpus=len(coordinator.links),
        pcpus_connected=sum(link.connected for link in coordinator.links.values()),
        dom0_attached=int(coordinator.session is not None),
    )


def _gauges() -> dict[str, GaugeMetricFamily]:
    """The coordinator's gauge families, empty."""
    gauges = (
        GaugeMetricFamily(
            "xenmca_xen_queue_depth",
            "Entries waiting in the type's interrupt queue (not counting the one in flight).",
            labels=["type"],
        ),
        GaugeMetricFamily(
            "xenmca_xen_in_flight",
            "1 while an entry of the type is injected into dom0 and not yet cleared, else 0.",
            labels=["type"],
        ),
        GaugeMetricFamily(
            "xenmca_xen_throttle_mode",
            "Throttle mode of a pCPU's CMC/CPE line: 1 polling, 0 interrupt "
            "(only lines that ever left interrupt mode).",
            labels=["pcpu", "type"],
        ),
        GaugeMetricFamily(
            "xenmca_xen_lines_polling", "pCPU CMC/CPE lines in polling mode now.", labels=[]
        ),
        GaugeMetricFamily("xenmca_xen_pcpus", "pCPUs the coordinator knows.", labels=[]),
        GaugeMetricFamily(
            "xenmca_xen_pcpus_connected",
            "pCPUs whose interrupt stream is connected.",
            labels=[],
        ),
        GaugeMetricFamily(
            "xenmca_xen_dom0_attached",
            "1 while a dom0 is attached (AttachDom0 stream open), else 0.",
            labels=[],
        ),
    )
    return {gauge.name.removeprefix("xenmca_xen_"): gauge for gauge in gauges}


class CoordinatorCollector:
    """Queues, counters, throttle lines and links of one coordinator, read at scrape time."""

    def __init__(self, coordinator: Coordinator, reader: LoopReader) -> None:
        self._coordinator = coordinator
        self._reader = reader

    def describe(self) -> Iterator[Metric]:
        for name, _, documentation in COUNTERS:
            yield CounterMetricFamily(name, documentation)
        yield from _gauges().values()

    def collect(self) -> Iterator[Metric]:
        sample = self._reader(lambda: read_coordinator(self._coordinator))
        for name, field, documentation in COUNTERS:
            yield CounterMetricFamily(name, documentation, value=sample.counters[field])
        gauges = _gauges()
        for name, value in sample.queue_depth:
            gauges["queue_depth"].add_metric([name], value)
        for name, value in sample.in_flight:
            gauges["in_flight"].add_metric([name], value)
        for pcpu, name, value in sample.throttled_lines:
            gauges["throttle_mode"].add_metric([pcpu, name], value)
        gauges["lines_polling"].add_metric([], sample.lines_polling)
        gauges["pcpus"].add_metric([], sample.pcpus)
        gauges["pcpus_connected"].add_metric([], sample.pcpus_connected)
        gauges["dom0_attached"].add_metric([], sample.dom0_attached)
        yield from gauges.values()


class XenMetrics:
    """A registry of its own with the coordinator's metrics; hooks the SAL-call observer.

    Create on the coordinator's event loop, before or after ``coordinator.start()``.
    """

    def __init__(self, coordinator: Coordinator, reader: LoopReader | None = None) -> None:
        self.registry = CollectorRegistry()
        self.sal_calls = Counter(
            "xenmca_xen_sal_calls",
            "SAL calls made on a pCPU for dom0, finished (with their retries), "
            "by call and path (local: vCPU0's pCPU; ipi: another pCPU).",
            ["call", "path"],
            registry=self.registry,
        )
        self.ipi_latency = Histogram(
            "xenmca_xen_ipi_latency_seconds",
            "Time of a SAL call on a pCPU, local or by IPI, retries included "
            "(failed calls too), by call and path.",
            ["call", "path"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Every (call, path) exists from the start, at 0; children kept for a cheap observe.
        self._children = {
            (call, path == "ipi"): (
                self.sal_calls.labels(call, path),
                self.ipi_latency.labels(call, path),
            )
            for call in CALLS
            for path in PATHS
        }
        self.registry.register(CoordinatorCollector(coordinator, reader or LoopReader()))
        coordinator.sal.observer = self.observe_call

    def observe_call(self, call: str, by_ipi: bool, seconds: float, ok: bool) -> None:
        """SalCaller's observer: one finished GET or CLEAR on a pCPU (ok or not)."""
        calls, latency = self._children[(call, by_ipi)]
        calls.inc()
        latency.observe(seconds)
