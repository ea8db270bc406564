"""The summary a run prints on the terminal (rich): records, latency, throttle, checks, where."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xenmca.testbed.check.result import label_of
from xenmca.testbed.infra.metrics_ports import endpoints_text

_STYLE = {"pass": "green", "fail": "bold red", "unknown": "yellow"}
# How many of a failing check's named records the summary shows.
SHOWN_RECORDS = 5
_RECORD_ROWS = (
    ("injected", "created in firmware (stored + overflowed)"),
    ("requested", "asked of the pCPUs by the workload"),
    ("logged", "durable in dom0's log"),
    ("pending", "still pending in firmware"),
    ("overflowed", "counted firmware overflows"),
    ("lost", "injected - logged - pending - overflowed"),
    ("duplicates", "logged more than once"),
    ("redelivered", "re-deliveries dom0 recognised"),
    ("cleared_before_logged", "CLEARs before dom0's commit"),
)


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}"
    return escape(f"{value}{unit}")


def _ms(value: Any) -> str:
    """A calibration figure: two decimals (they are around a millisecond)."""
    return f"{value:,.2f}" if isinstance(value, float | int) else "-"


def _verdict(valid: Any) -> str:
    if valid is True:
        return "[bold green]VALID[/]"
    if valid is False:
        return "[bold red]NOT VALID[/]"
    return "[bold yellow]VALIDITY UNKNOWN[/]"


def records_table(results: dict[str, Any]) -> Table:
    records = results.get("records") or {}
    table = Table(title="records", title_justify="left")
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_column("meaning", style="dim")
    for key, meaning in _RECORD_ROWS:
        value = records.get(key)
        style = ""
        if key in ("lost", "duplicates", "cleared_before_logged") and value:
            style = "bold red"
        table.add_row(key, f"[{style}]{_fmt(value)}[/]" if style else _fmt(value), meaning)
    return table


def measures_table(results: dict[str, Any]) -> Table:
    latency = results.get("latency_ms") or {}
    throttle = results.get("throttle") or {}
    rpc = results.get("rpc") or {}
    table = Table(title="measures", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row(
        "latency p50 / p99 / max",
        " / ".join(_fmt(latency.get(k)) for k in ("p50", "p99", "max")) + " ms",
    )
    table.add_row("throughput", _fmt(results.get("throughput_rps"), " records/s"))
    table.add_row(
        "throttle transitions",
        f"{len(throttle.get('transitions') or [])}"
        f" ({_fmt(throttle.get('lines_left_interrupt'))} lines polled)",
    )
    table.add_row(
        "SAL calls local / IPI / retries",
        " / ".join(_fmt(rpc.get(k)) for k in ("local", "ipi", "retries")),
    )
    calibration = results.get("calibration") or {}
    which = calibration.get("floor_from") or "start"
    used = calibration.get(which) or {}
    if used:
        table.add_row(
            f"round trip / commit / floor ({which})",
            " / ".join(_ms(used.get(k)) for k in ("rtt_ms", "commit_ms", "floor_ms")) + " ms",
        )
    table.add_row("faults applied", _fmt(len(results.get("faults") or [])))
    table.add_row("duration", _fmt(results.get("duration_s"), " s"))
    return table


def checks_table(results: dict[str, Any]) -> Table:
    checks = results.get("checks") or []
    passed = sum(1 for c in checks if c.get("status") == "pass")
    table = Table(title=f"checks: {passed} of {len(checks)} passed", title_justify="left")
    for column in ("check", "status", "observed", "bound"):
        table.add_column(column)
    for check in checks:
        status = str(check.get("status"))
        table.add_row(
            escape(str(check.get("name"))),
            f"[{_STYLE.get(status, 'yellow')}]{status}[/]",
            _fmt(check.get("observed")),
            _fmt(check.get("bound")),
        )
    return table


def named_records_line(check: dict[str, Any]) -> str:
    """ "3 named: pCPU 1 CMC #4 (note), ...": the first few records a check flagged."""
    records = check.get("records") or []
    if not records:
        return ""
    total = int(check.get("records_total") or len(records))
    shown = ", ".join(label_of(r) for r in records[:SHOWN_RECORDS])
    more = total - min(len(records), SHOWN_RECORDS)
    return f"{total} named: {shown}" + (f", and {more} more" if more > 0 else "")


def policy_label(policy: Any) -> str:
    """ " (coordinator xen-ia64-2009, dom0 linux-salinfo, plain SAL)", or "" for the defaults."""
    if not isinstance(policy, dict):
        return ""
    xen = str(policy.get("xen", "xenmca"))
    options = policy.get("options") or {}
    xen += "".join(f"+{k}={v}" for k, v in sorted(options.items()))
    parts = []
    if xen != "xenmca":
        parts.append(f"coordinator {xen}")
    if policy.get("dom0", "xenmca") != "xenmca":
        parts.append(f"dom0 {policy.get('dom0')}")
    if policy.get("sal", "extended") != "extended":
        parts.append(f"{policy.get('sal')} SAL")
    return f" ({', '.join(parts)})" if parts else ""


def print_summary(
    results: dict[str, Any], console: Console | None = None, results_dir: str | Path | None = None
) -> None:
    console = console or Console()
    name = (results.get("scenario") or {}).get("name", "?")
    console.print(
        f"scenario [bold]{escape(str(name))}[/]: {_verdict(results.get('valid'))}"
        f"{escape(policy_label(results.get('policy')))}"
    )
    if results.get("clock") == "virtual":
        console.print(
            "[dim]virtual time: every component in this process on one clock that jumps "
            "while the run is idle; times are virtual seconds, latency is not judged[/]"
        )
    console.print(records_table(results))
    console.print(measures_table(results))
    console.print(checks_table(results))
    for check in results.get("checks") or []:
        if check.get("status") != "pass":
            style = _STYLE.get(str(check.get("status")), "yellow")
            name, detail = escape(str(check.get("name"))), escape(str(check.get("detail")))
            console.print(f"[{style}]{name}[/]: {detail}", highlight=False)
            if check.get("status") == "fail":
                named = named_records_line(check)
                if named:
                    console.print(f"  {escape(named)}", highlight=False)
    for problem in results.get("problems") or []:
        console.print(f"[yellow]problem:[/] {escape(str(problem))}", highlight=False)
    scraped = results.get("metrics_scrape") or {}
    if scraped:
        console.print(metrics_line(scraped, results.get("metrics") or {}), highlight=False)
    where = results_dir or results.get("results_dir")
    if where:
        console.print(
            f"results: {escape(str(where))}  (report.html, results.json, events.jsonl, plots)"
        )


def metrics_line(scraped: dict[str, Any], urls: dict[str, str]) -> str:
    """ "metrics: scraped 4 of 4 endpoints at 41.2 s into metrics-*.prom (where they were)"."""
    components = scraped.get("components") or {}
    failed = sorted(name for name, c in components.items() if "error" in c)
    line = (
        f"metrics: scraped {len(components) - len(failed)} of {len(components)} endpoints"
        f" at {_fmt(scraped.get('t_s'))} s into metrics-*.prom"
    )
    if failed:
        line += f" (no answer: {', '.join(failed)})"
    if urls:
        line += f"; they served {endpoints_text(urls)}"
    return escape(line)
