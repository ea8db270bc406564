"""`xenmca bench` results: the machine they were measured on, the rows of targets, the table.

Every row is one figure: what was measured, its target, the ratio that the
target is about (to the floor where the target is relative to a floor,
otherwise to the target itself) and whether the target is met. A section
that was not run (``--only``) or failed still has its rows, with no figure.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass
class Row:
    """One line of the report."""

    section: str
    name: str
    unit: str
    measured: float | None
    target: str = ""
    ratio: float | None = None
    met: bool | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def _get(data: dict[str, Any] | None, *path: str) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    return round(a / b, digits) if a is not None and b else None


def _at_least(ratio: float | None, bound: float) -> bool | None:
    return None if ratio is None else ratio >= bound


def _at_most(ratio: float | None, bound: float) -> bool | None:
    return None if ratio is None else ratio <= bound


def build_rows(sections: dict[str, Any]) -> list[Row]:
    """The report's rows from the sections' results (missing figures stay None)."""
    floors = sections.get("floors")
    rtt = _get(floors, "rtt_p50_ms")
    commit = _get(floors, "commit_p50_ms")
    floor_rps = _get(floors, "records_per_s")
    samples = len(_get(floors, "samples") or [])
    rows = [
        Row("floors", "floor: bare unary round trip p50", "ms", rtt, note=f"median of {samples}"),
        Row("floors", "floor: durable SQLite commit p50", "ms", commit, note="WAL, FULL, 1 KiB"),
        Row("floors", "floor: 1/(4 RTT + commit)", "rec/s", floor_rps),
    ]

    faithful = _get(sections.get("throughput"), "records_per_s")
    ratio = _ratio(faithful, floor_rps)
    rows.append(
        Row(
            "throughput",
            "faithful flow throughput",
            "rec/s",
            faithful,
            f">= 0.8 x floor ({_fmt(floor_rps and 0.8 * floor_rps)})",
            ratio,
            _at_least(ratio, 0.8),
        )
    )

    per_process = _get(sections.get("throughput"), "cpu_ms_per_record") or {}
    cpu_per_record = round(sum(per_process.values()), 3) if per_process else None
    cores = os.cpu_count() or 1
    rows.append(
        Row(
            "throughput",
            "faithful flow CPU per record, all processes",
            "ms",
            cpu_per_record,
            "",
            None,
            None,
            (
                f"{cores} cores: at most {_fmt(1000 * cores / cpu_per_record)} rec/s if all "
                "of it overlapped"
                if cpu_per_record
                else ""
            ),
        )
    )

    pipelined = _get(sections.get("pipelined"), "records_per_s")
    ratio = _ratio(pipelined, floor_rps)
    rows.append(
        Row(
            "pipelined",
            "pipelined flow throughput",
            "rec/s",
            pipelined,
            f">= 2 x floor ({_fmt(floor_rps and 2 * floor_rps)})",
            ratio,
            _at_least(ratio, 2.0),
        )
    )
    ceiling = _get(floors, "pipelined_ceiling_records_per_s") if "pipelined" in sections else None
    rows.append(
        Row(
            "pipelined",
            "pipelined ceiling: 1/(2 RTT + commit)",
            "rec/s",
            ceiling,
            "",
            _ratio(ceiling, floor_rps),
            None,
            "dom0's own GET and CLEAR stay serial with its commit",
        )
    )

    latency = sections.get("latency")
    p99 = _get(latency, "p99_ms")
    ratio = _ratio(p99, rtt, 1)
    rows.append(
        Row(
            "latency",
            "latency inject->durable p50 at half load",
            "ms",
            _get(latency, "p50_ms"),
            "",
            _ratio(_get(latency, "p50_ms"), rtt, 1),
            None,
            f"offered {_fmt(_get(latency, 'offered_records_per_s'))} rec/s",
        )
    )
    rows.append(
        Row(
            "latency",
            "latency inject->durable p99 at half load",
            "ms",
            p99,
            f"<= 10 x RTT ({_fmt(rtt and 10 * rtt)})",
            ratio,
            _at_most(ratio, 10.0),
        )
    )

    storm = sections.get("storm")
    storm_ratio = _get(storm, "p99_ratio")
    storm_ratio = round(storm_ratio, 2) if storm_ratio is not None else None
    rows.append(
        Row(
            "storm",
            "quiet pCPUs' dom0 GET p99, storm / no storm",
            "x",
            storm_ratio,
            "<= 1.5",
            storm_ratio,
            _at_most(storm_ratio, 1.5),
            f"{_fmt(_get(storm, 'storm_rate'))}/s storm on one pCPU",
        )
    )
    rows.append(
        Row(
            "storm",
            "coordinator CPU during the storm",
            "%",
            _get(storm, "coordinator_cpu_percent_during_storm"),
            "",
            None,
            None,
            f"{_fmt(_get(storm, 'coordinator_cpu_percent_without_storm'))} % without",
        )
    )

    scale = sections.get("scale")
    pcpus = _get(scale, "pcpus")
    startup = _get(scale, "startup_s")
    rows.append(
        Row(
            "scale",
            f"{_fmt(pcpus)} pCPUs: launch -> all serving and attached",
            "s",
            startup,
            "<= 30",
            _ratio(startup, 30.0),
            _at_most(startup, 30.0),
            f"{_fmt(_get(scale, 'hosts'))} host processes",
        )
    )
    host_kib = _get(scale, "memory", "host_rss_kib_per_pcpu")
    rows.append(
        Row(
            "scale",
            "pCPU hosts' RSS per pCPU",
            "KiB",
            host_kib,
            "<= 100",
            _ratio(host_kib, 100.0),
            _at_most(host_kib, 100.0),
            f"anon {_fmt(_get(scale, 'memory', 'host_anon_kib_per_pcpu'))} KiB",
        )
    )
    rows.append(
        Row(
            "scale",
            "pCPU hosts' RSS per pCPU above a one-pCPU host",
            "KiB",
            _get(scale, "memory", "host_rss_kib_per_pcpu_above_baseline"),
            "",
            None,
            None,
            f"a one-pCPU host: {_fmt(_get(scale, 'memory', 'host_baseline_rss_mib'))} MiB",
        )
    )
    rows.append(
        Row(
            "scale",
            "coordinator RSS per pCPU",
            "KiB",
            _get(scale, "memory", "coordinator_rss_kib_per_pcpu"),
            "",
            None,
            None,
            f"anon {_fmt(_get(scale, 'memory', 'coordinator_anon_kib_per_pcpu'))} KiB",
        )
    )
    idle = _get(scale, "idle", "coordinator_cpu_percent")
    rows.append(
        Row(
            "scale",
            "coordinator CPU while idle",
            "% core",
            idle,
            "<= 5",
            _ratio(idle, 5.0),
            _at_most(idle, 5.0),
            f"hosts {_fmt(_get(scale, 'idle', 'hosts_cpu_percent'))} %",
        )
    )
    conservation = _get(scale, "conservation")
    logged = _get(conservation, "logged")
    rows.append(
        Row(
            "scale",
            "one record from every pCPU delivered",
            "records",
            logged,
            f"= {_fmt(pcpus)}, lost 0, pending 0",
            _ratio(logged, pcpus),
            _get(conservation, "holds"),
            f"lost {_fmt(_get(conservation, 'lost'))}, in {_fmt(_get(scale, 'delivery_s'))} s",
        )
    )
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    return str(value)


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
        measured = "-" if row.measured is None else f"{_fmt(row.measured)} {row.unit}"
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: ""}[row.met]
        table.add_row(row.name, measured, row.target, _fmt(row.ratio), met, row.note)
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
        measured = "-" if row.measured is None else f"{_fmt(row.measured)} {row.unit}"
        met = {True: "yes", False: "**no**", None: ""}[row.met]
        cells = (row.name, measured, row.target, _fmt(row.ratio), met, row.note)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines.append("")
    lines.append(
        f"Measured on {machine.get('cpu_count')} CPUs ({machine.get('cpu_model')}), "
        f"{machine.get('memory_mib')} MiB, Python {machine.get('python')}, "
        f"grpcio {machine.get('grpcio')}; load average {machine.get('load_average')} at the "
        "start. Ratio: to the floor where the target is relative to it, else to the target."
    )
    return "\n".join(lines) + "\n"
