"""Prometheus metrics of a pCPU host: every pCPU's record store and lines, read at scrape time.

One custom collector walks the host's firmware (no RPC, no copy of a record):
per pCPU and record type, the lifetime counters, the pending records and the
line mask. A host of 1024 pCPUs makes 4096 reads of a few integers each, taken
on the host's event loop in chunks of ``READ_CHUNK`` pCPUs so that a scrape
never holds the loop for more than a few milliseconds; the text is formatted
on the scrape thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from xenmca.pcpu.firmware import PcpuFirmware
from xenmca.pcpu.server import PcpuHost
from xenmca.rpc.metrics import LoopReader
from xenmca.vocab import RECORD_TYPES, type_name

LABELS = ("pcpu", "type")
READ_CHUNK = 256
"""pCPUs read in one turn of the event loop."""


@dataclass(frozen=True, slots=True)
class LineSample:
    """One pCPU and type as read at scrape time."""

    pcpu: str
    type: str
    created: int
    cleared: int
    overflowed: int
    interrupts_raised: int
    pending: int
    masked: bool


def read_lines(firmwares: Iterable[PcpuFirmware]) -> list[LineSample]:
    """Every (pCPU, type) of the firmwares, in their order, then in SAL type order."""
    names = [(t, type_name(t)) for t in RECORD_TYPES]
    samples = []
    for firmware in firmwares:
        pcpu = str(firmware.pcpu)
        for record_type, name in names:
            state = firmware.store.state(record_type)
            counters = state.counters
            samples.append(
                LineSample(
                    pcpu,
                    name,
                    counters.created,
                    counters.cleared,
                    counters.overflowed,
                    counters.interrupts_raised,
                    state.pending,
                    state.masked,
                )
            )
    return samples


def _counter_families() -> tuple[CounterMetricFamily, ...]:
    return (
        CounterMetricFamily(
            "xenmca_pcpu_records_created",
            "Error records the hardware made (stored plus overflowed), per pCPU and type.",
            labels=LABELS,
        ),
        CounterMetricFamily(
            "xenmca_pcpu_records_cleared",
            "Records invalidated by SAL_CLEAR_STATE_INFO, per pCPU and type.",
            labels=LABELS,
        ),
        CounterMetricFamily(
            "xenmca_pcpu_records_overflowed",
            "Records lost because the type's store was full (counted, never silent).",
            labels=LABELS,
        ),
        CounterMetricFamily(
            "xenmca_pcpu_interrupts_raised",
            "Interrupts raised on the line (one per stored record while unmasked).",
            labels=LABELS,
        ),
    )


def _gauge_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            "xenmca_pcpu_records_pending",
            "Records stored in firmware and not yet cleared, per pCPU and type.",
            labels=LABELS,
        ),
        GaugeMetricFamily(
            "xenmca_pcpu_line_masked",
            "1 while the pCPU's interrupt line of the type is masked (Xen polls it), else 0.",
            labels=LABELS,
        ),
    )


class PcpuHostCollector:
    """The host's per-pCPU, per-type metrics, read from its firmware at scrape time."""

    def __init__(self, host: PcpuHost, reader: LoopReader) -> None:
        self._host = host
        self._reader = reader

    def _firmwares(self) -> list[PcpuFirmware]:
        return [self._host.servers[pcpu].firmware for pcpu in sorted(self._host.servers)]

    def _read(self) -> Iterator[LineSample]:
        firmwares = self._reader(self._firmwares)
        for start in range(0, len(firmwares), READ_CHUNK):
            chunk = firmwares[start : start + READ_CHUNK]
            yield from self._reader(partial(read_lines, chunk))

    def describe(self) -> Iterator[Metric]:
        yield from _counter_families()
        yield from _gauge_families()

    def collect(self) -> Iterator[Metric]:
        created, cleared, overflowed, interrupts = _counter_families()
        pending, masked = _gauge_families()
        for s in self._read():
            labels = [s.pcpu, s.type]
            created.add_metric(labels, s.created)
            cleared.add_metric(labels, s.cleared)
            overflowed.add_metric(labels, s.overflowed)
            interrupts.add_metric(labels, s.interrupts_raised)
            pending.add_metric(labels, s.pending)
            masked.add_metric(labels, 1 if s.masked else 0)
        yield from (created, cleared, overflowed, interrupts, pending, masked)


class PcpuMetrics:
    """A registry of its own with the host's metrics (create on the host's event loop)."""

    def __init__(self, host: PcpuHost, reader: LoopReader | None = None) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(PcpuHostCollector(host, reader or LoopReader()))
