"""`xenmca bench` results: the machine they were measured on, the rows of targets, the table.

Each section builds its own rows (`xenmca.testbed.bench.rows`); a section that
was not run (``--only``) or failed still has its rows, with no figure.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from xenmca.testbed.bench import floor, flow, hops, scale, skeleton, storm
from xenmca.testbed.bench.rows import Row, fmt


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    with_cpuinfo = Path("/proc/cpuinfo")
    if with_cpuinfo.is_file():
        for line in with_cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    memory_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    import google.protobuf
    import grpc

    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model or platform.processor() or "unknown",
        "memory_mib": memory_kib // 1024,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "grpcio": grpc.__version__,
        "protobuf": google.protobuf.__version__,
        "executable": sys.executable,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


ROWS: tuple[tuple[str, Callable[[Mapping[str, Any]], list[Row]]], ...] = (
    ("floors", floor.rows),
    ("skeleton", skeleton.rows),
    ("hops", hops.rows),
    ("throughput", flow.throughput_rows),
    ("pipelined", flow.pipelined_rows),
    ("latency", flow.latency_rows),
    ("storm", storm.rows),
    ("scale", scale.rows),
)
"""Each section and the function that builds its rows, in the report's order."""


def build_rows(sections: Mapping[str, Any]) -> list[Row]:
    """The report's rows: each section's own, in order (missing figures stay None)."""
    return [row for _, rows_of in ROWS for row in rows_of(sections)]


def render(rows: list[Row], machine: dict[str, Any], console: Console) -> None:
    """The rows as a rich table, with the machine underneath."""
    table = Table(title="xenmca bench", title_justify="left")
    table.add_column("benchmark")
    table.add_column("measured", justify="right")
    table.add_column("target", justify="left")
    table.add_column("ratio", justify="right")
    table.add_column("met?", justify="center")
    table.add_column("note", style="dim")
    for row in rows:
        measured = "-" if row.measured is None else f"{fmt(row.measured)} {row.unit}"
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: ""}[row.met]
        table.add_row(row.name, measured, row.target, fmt(row.ratio), met, row.note)
    console.print(table)
    console.print(
        f"[dim]{machine.get('cpu_count')} CPUs, {machine.get('cpu_model')}, "
        f"Python {machine.get('python')}, grpcio {machine.get('grpcio')}; "
        f"load average {machine.get('load_average')}; ratio: to the floor where the target "
        f"is relative to it, else to the target[/]"
    )


def markdown(rows: list[Row], machine: dict[str, Any]) -> str:
    """The rows as a Markdown table (for the README), with the machine underneath."""
    lines = [
        "| benchmark | measured | target | ratio | met? | note |",
        "|---|--:|---|--:|:-:|---|",
    ]
    for row in rows:
        measured = "-" if row.measured is None else f"{fmt(row.measured)} {row.unit}"
        met = {True: "yes", False: "**no**", None: ""}[row.met]
        cells = (row.name, measured, row.target, fmt(row.ratio), met, row.note)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines.append("")
    lines.append(
        f"Measured on {machine.get('cpu_count')} CPUs ({machine.get('cpu_model')}), "
        f"{machine.get('memory_mib')} MiB, Python {machine.get('python')}, "
        f"grpcio {machine.get('grpcio')}; load average {machine.get('load_average')} at the "
        "start. Ratio: to the floor where the target is relative to it, else to the target."
    )
    return "\n".join(lines) + "\n"
