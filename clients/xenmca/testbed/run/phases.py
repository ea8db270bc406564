"""The runner's phases around the workload: warm-up and calibration before, calibration
and the metrics scrape after.

Before the workload clock starts (`before_workload`): the workload's channels are
opened and answered once, dom0's metrics endpoint is asked once, the plots' warm-up
(started while the testbed started) is awaited, and the machine is calibrated
(`xenmca.testbed.run.calibration`). After the drain and the settle, with every process
still up (`after_drain`): a second calibration, then every metrics endpoint is
scraped into the results folder (`xenmca.testbed.infra.metrics_scrape`). Each phase is a
runner event (``warmup``, ``metrics_endpoints``, ``calibration``,
``metrics_scraped``), so results.json and the checkers read them with the rest of
the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path

from xenmca.rpc.events import EventLog
from xenmca.testbed.infra.bed import Testbed
from xenmca.testbed.infra.metrics_ports import endpoints_text
from xenmca.testbed.infra.metrics_scrape import (
    ENDPOINTS_EVENT,
    SCRAPED_EVENT,
    fetch,
    scrape_to_files,
)
from xenmca.testbed.run.calibration import (
    CALIBRATION_EVENT,
    WARMUP_EVENT,
    calibrate,
    calibration_targets,
)
from xenmca.testbed.run.warmup import WarmChannels

DOM0 = "dom0"


def _host_addresses(bed: Testbed) -> list[str]:
    """The address of each pCPU host's first pCPU, in host order."""
    first: dict[str, str] = {}
    for pcpu in sorted(bed.pcpu_addresses):
        first.setdefault(bed.host_of(pcpu).name, bed.pcpu_addresses[pcpu])
    return list(first.values())


async def _calibrate(bed: Testbed, directory: Path, events: EventLog, when: str) -> None:
    targets = calibration_targets(bed.xen_address, _host_addresses(bed))
    measured = await calibrate(bed.channel, targets, directory, bed.operator_metadata())
    events.emit(CALIBRATION_EVENT, when=when, **measured.as_fields())


def metrics_line(urls: dict[str, str]) -> str:
    """``metrics at http://127.0.0.1:PORT/metrics: xen 4101, dom0 4102, pcpu-host0 4099``."""
    return f"metrics at {endpoints_text(urls)}" if urls else "metrics: off"


async def before_workload(
    bed: Testbed,
    pcpus: Iterable[int],
    directory: Path,
    events: EventLog,
    plots: asyncio.Future[tuple[float, str | None]] | None,
    say: Callable[[str], None] | None = None,
) -> WarmChannels:
    """Warm every process and the workload's channels up, then calibrate; returns the channels."""
    channels = WarmChannels(bed.channel)
    addresses = [bed.pcpu_addresses[p] for p in sorted(set(pcpus)) if p in bed.pcpu_addresses]
    errors = await channels.warm(addresses, bed.operator_metadata())
    if DOM0 in bed.metrics_urls:
        try:
            await asyncio.to_thread(fetch, bed.metrics_urls[DOM0])
        except (OSError, ValueError) as exc:
            errors.append(f"dom0 metrics: {exc}")
    plots_s = None
    if plots is not None:
        seconds, error = await plots
        plots_s = round(seconds, 3)
        if error is not None:
            errors.append(f"plots: {error}")
    events.emit(WARMUP_EVENT, channels=len(addresses), plots_s=plots_s, errors=errors)
    if bed.metrics_urls:
        events.emit(ENDPOINTS_EVENT, urls=dict(bed.metrics_urls))
        if say is not None:
            say(metrics_line(bed.metrics_urls))
    await _calibrate(bed, directory, events, "start")
    return channels


async def after_drain(bed: Testbed, directory: Path, events: EventLog) -> None:
    """Calibrate again and scrape every metrics endpoint (the processes are still up)."""
    await _calibrate(bed, directory, events, "end")
    if bed.metrics_urls:
        outcomes = await scrape_to_files(bed.metrics_urls, directory)
        events.emit(SCRAPED_EVENT, outcomes=outcomes)
