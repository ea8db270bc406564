"""The results folder's plots (PNG, matplotlib's Agg backend, no display needed).

latency.png      each logged record's injection-to-log latency against its log time
rates.png        injected vs logged records per second (1 s bins)
queue_depth.png  the coordinator's queue depth per type, as sampled
throttle.png     one row per pCPU line that ever left interrupt mode: when it was polling

Every plot over time shades the fault windows, labelled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot: no display, no GUI toolkit

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from xenmca.testbed.check.checkers import of_kind, percentile
from xenmca.testbed.run.data import RunData

Line = tuple[int, str]
DPI = 100
_FAULT_COLOUR = "tab:red"


def _figure(height: float = 3.6) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(10, height), dpi=DPI, layout="constrained")
    return figure, figure.add_subplot()


def _seconds(data: RunData, t_ns: Iterable[int]) -> np.ndarray:
    return (np.fromiter(t_ns, dtype=np.int64) - data.start_ns) / 1e9


def _end_s(data: RunData) -> float:
    return max(data.seconds(data.end_ns), 1e-3)


def shade_faults(ax: Axes, data: RunData) -> None:
    end = _end_s(data)
    for fault in data.faults:
        start = data.seconds(fault.start_ns)
        stop = end if fault.end_ns is None else data.seconds(fault.end_ns)
        ax.axvspan(start, max(stop, start + end / 500), color=_FAULT_COLOUR, alpha=0.12, lw=0)
        ax.text(
            start,
            0.98,
            f" {fault.kind} {fault.target}",
            transform=ax.get_xaxis_transform(),
            fontsize=7,
            color=_FAULT_COLOUR,
            va="top",
            ha="left",
            clip_on=True,
        )


def _finish(ax: Axes, data: RunData, title: str, ylabel: str) -> None:
    ax.set_xlim(0, _end_s(data))
    ax.set_xlabel("seconds since the run started")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    shade_faults(ax, data)


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="grey")


def plot_latency(data: RunData, ax: Axes) -> None:
    rows = [r for r in data.log if r.created_monotonic_ns > 0]
    if rows:
        logged = np.fromiter((r.logged_monotonic_ns for r in rows), dtype=np.int64)
        created = np.fromiter((r.created_monotonic_ns for r in rows), dtype=np.int64)
        latency = np.maximum((logged - created) / 1e6, 1e-3)
        ax.plot((logged - data.start_ns) / 1e9, latency, ".", ms=2.5, alpha=0.5, label="record")
        ax.set_yscale("log")
        p99 = percentile(latency.tolist(), 99)
        ax.axhline(p99 or 0, color="tab:orange", lw=1.2, label=f"p99 {p99:.1f} ms")
        bound = data.scenario.checks.latency_p99_ms
        if bound is not None:
            ax.axhline(bound, color="tab:red", ls="--", lw=1, label=f"p99 bound {bound:g} ms")
        ax.legend(loc="upper right", fontsize=8)
    else:
        _empty(ax, "no logged record carries its creation time")
    _finish(ax, data, "latency from injection to durable log", "ms (log scale)")


def _per_second(times_s: np.ndarray, weights: np.ndarray | None, bins: int) -> np.ndarray:
    index = np.clip(np.floor(times_s).astype(np.int64), 0, bins - 1)
    return np.bincount(index, weights=weights, minlength=bins)[:bins]


def plot_rates(data: RunData, ax: Axes) -> None:
    bins = max(1, int(np.ceil(_end_s(data))))
    edges = np.arange(bins + 1)
    created = of_kind(data.events, "pcpu", "records_created")
    injected = _per_second(
        _seconds(data, (int(e["t_mono_ns"]) for e in created)),
        np.fromiter(
            (int(e.get("stored", 0)) + int(e.get("overflowed", 0)) for e in created), dtype=float
        ),
        bins,
    )
    logged = _per_second(_seconds(data, (r.logged_monotonic_ns for r in data.log)), None, bins)
    ax.stairs(injected, edges, label="injected (created in firmware)", lw=1.5, baseline=None)
    ax.stairs(logged, edges, label="logged (durable in dom0)", lw=1.5, baseline=None)
    ax.set_ylim(
        bottom=0, top=max(1.0, float(injected.max(initial=0)), float(logged.max(initial=0))) * 1.1
    )
    ax.legend(loc="upper right", fontsize=8)
    _finish(ax, data, "records per second (1 s bins)", "records/s")


def plot_queue_depth(data: RunData, ax: Axes) -> None:
    samples = data.samples
    title = "coordinator queue depth (entries waiting, +1 in flight)"
    if samples:
        times = _seconds(data, (s.t_ns for s in samples))
        types = sorted({t for s in samples for t in s.queue_depth})
        for name in types:
            depth = np.array(
                [s.queue_depth.get(name, 0) if s.reachable else np.nan for s in samples],
                dtype=float,
            )
            ax.step(times, depth, where="post", label=name)
        if types:
            ax.legend(loc="upper right", fontsize=8)
        if not all(s.reachable for s in samples):
            title += "; gaps: coordinator did not answer"
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        _empty(ax, "no samples of the coordinator")
    _finish(ax, data, title, "entries")


def polling_spans(data: RunData) -> dict[Line, list[tuple[float, float]]]:
    """Per line that ever left interrupt mode: its (start_s, end_s) spans in polling mode.

    A coordinator restart puts every line back in interrupt mode.
    """
    end = _end_s(data)
    since: dict[Line, float | None] = {}
    spans: dict[Line, list[tuple[float, float]]] = defaultdict(list)

    def close(line: Line, at: float) -> None:
        start = since.get(line)
        if start is not None:
            spans[line].append((start, at))
        since[line] = None

    for event in data.events:
        if event.get("component") != "xen":
            continue
        at = data.seconds(int(event["t_mono_ns"]))
        if event.get("kind") == "coordinator_started":
            for line in list(since):
                close(line, at)
        elif event.get("kind") == "throttle_transition" and event.get("old") != event.get("new"):
            line = (int(event["pcpu"]), str(event["type"]).upper())
            if event.get("new") == "polling":
                if since.get(line) is None:
                    since[line] = at
            else:
                close(line, at)
    for line in list(since):
        close(line, end)
    return dict(spans)


def plot_throttle(data: RunData, ax: Axes) -> None:
    spans = polling_spans(data)
    lines = sorted(spans)
    for row, line in enumerate(lines):
        bars = [(start, max(stop - start, 1e-3)) for start, stop in spans[line]]
        ax.broken_barh(bars, (row - 0.35, 0.7), color="tab:purple")
    if lines:
        ax.set_yticks(range(len(lines)), [f"pCPU {p} {t}" for p, t in lines], fontsize=8)
        ax.set_ylim(-0.6, len(lines) - 0.4)
        ax.invert_yaxis()
    else:
        ax.set_yticks([])
        _empty(ax, "no line left interrupt mode")
    _finish(ax, data, "throttle: bars mark a line in polling mode, gaps interrupt mode", "line")


_PLOTS: list[tuple[str, Callable[[RunData, Axes], None]]] = [
    ("latency.png", plot_latency),
    ("rates.png", plot_rates),
    ("queue_depth.png", plot_queue_depth),
    ("throttle.png", plot_throttle),
]


def _height(name: str, data: RunData) -> float:
    if name != "throttle.png":
        return 3.6
    return min(24.0, max(2.6, 1.4 + 0.28 * len(polling_spans(data))))


def write_plots(directory: str | Path, data: RunData) -> list[Path]:
    """Write every plot into directory; the paths written, in a fixed order."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in _PLOTS:
        figure, ax = _figure(_height(name, data))
        draw(data, ax)
        path = out / name
        figure.savefig(path, dpi=DPI)
        written.append(path)
    return written
