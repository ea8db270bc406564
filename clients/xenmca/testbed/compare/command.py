"""`xenmca compare-policies`: the same storm workloads under each storm rule, side by side.

Prints a table, writes `compare.json`, a plot (`compare.png`) and each run's
results folder (``--json`` prints compare.json on stdout instead of the table).
Exit 0 when every run could be made (the figures are measures, not verdicts), 2
for a bad command line, 3 when a testbed would not start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from xenmca import exit_status
from xenmca.testbed.compare.workloads import STORM_RULES, Workload, workloads

COLUMNS: tuple[tuple[str, str], ...] = (
    ("interrupts", "irqs"),
    ("polls", "polls"),
    ("logged", "logged"),
    ("overflowed", "overflow"),
    ("detect_s", "seen s"),
    ("back_s", "back s"),
    ("quiet_lines_throttled", "quiet polled"),
    ("quiet_p99_ms", "quiet p99 ms"),
    ("coordinator_cpu_percent", "xen CPU %"),
)
"""(figure, column label): the storm seen (s after it began), back to interrupt mode (s
after it ended), quiet lines that went to polling, the quiet pCPUs' p99 latency."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from xenmca.cli_common import add_json_arguments

    add_json_arguments(parser, "the figures")
    parser.add_argument(
        "--out",
        type=Path,
        help="results folder (default ./xenmca-results/compare-policies/<timestamp>/)",
    )
    parser.add_argument("--quick", action="store_true", help="shorter workloads (CI)")
    parser.add_argument(
        "--rules",
        metavar="NAME,...",
        default=",".join(STORM_RULES),
        help=f"storm rules to compare (default {','.join(STORM_RULES)})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


async def run_all(
    chosen: tuple[Workload, ...], rules: list[str], out: Path, show_progress: bool
) -> list[dict[str, Any]]:
    from rich.console import Console

    from xenmca.cli_common import cells_progress
    from xenmca.testbed.compare.workloads import figures, scenario_for
    from xenmca.testbed.run.finish import finish_run
    from xenmca.testbed.run.runner import ScenarioRun

    rows: list[dict[str, Any]] = []
    progress = cells_progress(show_progress)
    with progress:
        task = progress.add_task("compare", total=len(chosen) * len(rules))
        for workload in chosen:
            for rule in rules:
                progress.update(task, description=f"{workload.name} / {rule}")
                scenario = scenario_for(workload, rule)
                folder = out / workload.name / rule
                run = ScenarioRun(
                    scenario, folder, console=Console(stderr=True), show_progress=False
                )
                data = await run.execute()
                results = finish_run(data)
                rows.append(
                    {
                        "workload": workload.name,
                        "title": workload.title,
                        "rule": rule,
                        **figures(data, results),
                        "results_dir": str(folder),
                    }
                )
                progress.advance(task)
    return rows


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        # A storm that was never seen, or whose line never came back, says so.
        return "never" if key in ("detect_s", "back_s") and row["storm_lines"] else "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def print_table(rows: list[dict[str, Any]], seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"storm rules side by side ({seconds:.0f} s)", title_justify="left")
    table.add_column("workload")
    table.add_column("rule")
    for _, label in COLUMNS:
        table.add_column(label, justify="right")
    for row in rows:
        table.add_row(row["workload"], row["rule"], *(_cell(row, key) for key, _ in COLUMNS))
    Console(width=max(120, Console().width)).print(table)


def write_plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Grouped bars, one panel per figure, one bar per storm rule in each workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("interrupts", "interrupts taken"),
        ("polls", "polls made"),
        ("detect_s", "storm seen after (s)"),
        ("back_s", "back to interrupts after (s)"),
        ("quiet_p99_ms", "quiet lines' p99 latency (ms)"),
        ("coordinator_cpu_percent", "coordinator CPU (% of a core)"),
    ]
    names = list(dict.fromkeys(r["workload"] for r in rows))
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    figure, axes = plt.subplots(2, 3, figsize=(15, 8))
    width = 0.8 / max(1, len(rules))
    for axis, (key, label) in zip(axes.flat, panels, strict=True):
        for i, rule in enumerate(rules):
            values = []
            for name in names:
                row = next((r for r in rows if r["workload"] == name and r["rule"] == rule), {})
                value = row.get(key)
                values.append(float(value) if isinstance(value, int | float) else 0.0)
            axis.bar([x + i * width for x in range(len(names))], values, width, label=rule)
        axis.set_title(label)
        axis.set_xticks([x + width * (len(rules) - 1) / 2 for x in range(len(names))])
        axis.set_xticklabels(names, rotation=15)
    axes.flat[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def run(args: argparse.Namespace) -> int:
    from xenmca.cli_common import write_json_out
    from xenmca.testbed.infra.processes import ProcessStartError
    from xenmca.testbed.run.command import default_out_dir

    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    unknown = [r for r in rules if r not in STORM_RULES]
    if unknown or not rules:
        print(
            f"xenmca compare-policies: error: --rules: unknown storm rule "
            f"{unknown[0] if unknown else '(none)'!r} (known: {', '.join(STORM_RULES)})",
            file=sys.stderr,
        )
        return exit_status.USAGE
    out = args.out or default_out_dir("compare-policies")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        rows = asyncio.run(run_all(workloads(args.quick), rules, out, not args.no_progress))
    except ProcessStartError as exc:
        print(f"xenmca compare-policies: error: testbed did not start: {exc}", file=sys.stderr)
        return exit_status.NOT_RUN
    except KeyboardInterrupt:
        print("xenmca compare-policies: interrupted; testbed stopped", file=sys.stderr)
        return exit_status.INTERRUPTED
    seconds = time.monotonic() - started
    plot = write_plot(rows, out / "compare.png")
    text = json.dumps(
        {"quick": args.quick, "seconds": round(seconds, 1), "rows": rows, "plot": str(plot)},
        indent=2,
        default=str,
    )
    (out / "compare.json").write_text(text + "\n", encoding="utf-8")
    write_json_out(args.json_out, text + "\n")
    if args.json:
        sys.stdout.write(text + "\n")
    else:
        print_table(rows, seconds)
    print(
        f"results: {out}  (compare.json, compare.png, <workload>/<rule>/ per run)",
        file=sys.stderr if args.json else sys.stdout,
    )
    return exit_status.OK
