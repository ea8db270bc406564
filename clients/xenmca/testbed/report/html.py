"""report.html: one self-contained page (inline CSS, no external assets) showing a run's results."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

import yaml

REPORT_FILE = "report.html"

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: .2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.verdict { display: inline-block; padding: .3em .9em; border-radius: 4px; font-weight: bold;
  color: #fff; font-size: 1.2em; }
.true, .pass { background: #2e7d32; } .false, .fail { background: #c62828; }
.unknown { background: #ef6c00; }
td.status { color: #fff; font-weight: bold; text-align: center; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 12px; }
img { max-width: 100%; border: 1px solid #eee; margin: .5em 0; }
.muted { color: #777; } ul.problems li { color: #c62828; }
"""


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def _cell(value: Any) -> str:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return f"<td{' class=num' if numeric else ''}>{escape(_text(value))}</td>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "none") -> str:
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table><tr>{head}</tr>{body}</table>"


def _key_values(mapping: dict[str, Any]) -> str:
    return _table(("", "value"), ((k, v) for k, v in mapping.items() if not isinstance(v, dict)))


def _verdict(valid: Any) -> str:
    label = "unknown" if valid not in (True, False) else str(valid).lower()
    return f'<span class="verdict {label}">valid: {escape(label)}</span>'


def _checks(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return '<p class="muted">no checks</p>'
    rows = []
    for c in checks:
        status = str(c.get("status", "unknown"))
        css = status if status in ("pass", "fail") else "unknown"
        cells = "".join(_cell(c.get(k)) for k in ("observed", "bound", "detail"))
        rows.append(
            f"<tr><td>{escape(str(c.get('name')))}</td>"
            f'<td class="status {css}">{escape(status)}</td>{cells}</tr>'
        )
    head = "".join(f"<th>{h}</th>" for h in ("check", "status", "observed", "bound", "detail"))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _named_records(checks: list[dict[str, Any]]) -> str:
    """Per failing check, a table of the records it names."""
    parts = []
    for check in checks:
        records = check.get("records") or []
        if check.get("status") != "fail" or not records:
            continue
        total = int(check.get("records_total") or len(records))
        shown = f"{len(records)} of {total}" if total > len(records) else str(total)
        parts.append(f"<h3>{escape(str(check.get('name')))}: {escape(shown)} named</h3>")
        rows = (
            (
                r.get("pcpu"),
                r.get("type"),
                "line" if r.get("record_id") is None else r.get("record_id"),
                r.get("note", ""),
            )
            for r in records
        )
        parts.append(_table(("pCPU", "type", "record id", "why named"), rows))
    if not parts:
        return ""
    return "<h2>Named records</h2>" + "".join(parts)


def _policy(policy: dict[str, Any]) -> str:
    if not policy:
        return ""
    options = policy.get("options") or {}
    rows = {
        "coordinator": policy.get("xen"),
        "dom0": policy.get("dom0"),
        "options": ", ".join(f"{k}={v}" for k, v in options.items()) or "none",
        "firmware": policy.get("sal"),
    }
    return "<h2>Policy</h2>" + _key_values(rows)


def _calibration(calibration: dict[str, Any] | None) -> str:
    """Each calibration's medians, and the floor the relative latency bounds used."""
    if not calibration:
        return ""
    keys = ("rtt_ms", "commit_ms", "floor_ms", "rtt_calls", "commits", "took_s")
    heads = ("when", "round trip ms", "commit ms", "floor ms", "calls", "commits", "took s")
    rows = [
        (when, *(calibration[when].get(k) for k in keys))
        for when in ("start", "end")
        if isinstance(calibration.get(when), dict)
    ]
    used = calibration.get("floor_ms")
    note = (
        f"floor = {calibration.get('round_trips_per_floor', 4)} round trips + 1 durable commit;"
        f" relative latency bounds use {_text(used)} ms ({_text(calibration.get('floor_from'))})"
    )
    return "<h2>Calibration</h2>" + _table(heads, rows) + f"<p class=muted>{escape(note)}</p>"


def _metrics(results: dict[str, Any]) -> str:
    """Each process's endpoint and what its scrape at the end of the run left."""
    urls = results.get("metrics") or {}
    scraped = (results.get("metrics_scrape") or {}).get("components") or {}
    if not urls and not scraped:
        return ""
    rows = [
        (
            name,
            urls.get(name),
            (scraped.get(name) or {}).get("file"),
            scraped.get(name, {}).get("error"),
        )
        for name in dict.fromkeys([*urls, *scraped])
    ]
    return "<h2>Metrics</h2>" + _table(("component", "endpoint", "scraped into", "error"), rows)


def _scenario_text(scenario: Any) -> str:
    plain = json.loads(json.dumps(scenario, default=str))  # tuples -> lists for safe_dump
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)


def _image_src(directory: Path, plot: Path) -> str:
    if not plot.is_absolute() and plot.parent == Path("."):
        return plot.name
    try:
        return Path(os.path.relpath(plot.resolve(), directory.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return plot.name


def _images(directory: Path, plot_files: Sequence[str | Path]) -> str:
    parts = []
    for plot in map(Path, plot_files):
        src = escape(_image_src(directory, plot))
        parts.append(
            f'<figure><img src="{src}" alt="{escape(plot.stem)}">'
            f"<figcaption class=muted>{escape(plot.name)}</figcaption></figure>"
        )
    return "".join(parts) or '<p class="muted">no plots</p>'


def _rpc_rows(rpc: dict[str, Any]) -> dict[str, Any]:
    mean = {f"mean ms, {k}": v for k, v in (rpc.get("mean_ms") or {}).items()}
    return {**rpc, **(rpc.get("calls") or {}), **mean}


def render_report(
    directory: Path, results: dict[str, Any], plot_files: Sequence[str | Path]
) -> str:
    scenario = results.get("scenario") or {}
    records = results.get("records") or {}
    throttle = results.get("throttle") or {}
    rpc = results.get("rpc") or {}
    throughput = {
        "overall (records/s)": results.get("throughput_rps"),
        "during the workload (records/s)": results.get("throughput_rps_workload"),
        "duration (s)": results.get("duration_s"),
    }
    problems = results.get("problems") or []
    transitions = throttle.get("transitions") or []
    t_keys = ("t_s", "pcpu", "type", "old", "new", "interval_s", "why")
    f_keys = ("kind", "target", "start_s", "end_s", "effect", "params")
    sections = [
        f"<h1>xenmca run: {escape(str(scenario.get('name', '?')))}</h1>",
        f"<p class=muted>{escape(str(scenario.get('description', '')))}</p>",
        _verdict(results.get("valid")),
        (
            "<ul class=problems>"
            + "".join(f"<li>{escape(str(p))}</li>" for p in problems)
            + "</ul>"
            if problems
            else ""
        ),
        "<h2>Checks</h2>",
        _checks(results.get("checks") or []),
        _named_records(results.get("checks") or []),
        _policy(results.get("policy") or {}),
        "<h2>Records</h2>",
        _key_values(records),
        "<h2>Latency, injection to durable log (ms)</h2>",
        _key_values(results.get("latency_ms") or {}),
        "<h2>Throughput</h2>",
        _key_values(throughput),
        "<h2>SAL calls by the coordinator</h2>",
        _key_values(_rpc_rows(rpc)),
        _calibration(results.get("calibration")),
        _metrics(results),
        "<h2>Plots</h2>",
        _images(directory, plot_files),
        f"<h2>Throttle transitions ({len(transitions)})</h2>",
        _key_values({k: v for k, v in throttle.items() if k != "transitions"}),
        _table(t_keys, ([t.get(k) for k in t_keys] for t in transitions), "no line changed mode"),
        "<h2>Faults</h2>",
        _table(f_keys, ([f.get(k) for k in f_keys] for f in results.get("faults") or []), "none"),
        "<h2>Scenario</h2>",
        f"<pre>{escape(_scenario_text(scenario))}</pre>",
        "<h2>Versions</h2>",
        _key_values(results.get("versions") or {}),
    ]
    title = escape(f"xenmca {scenario.get('name', '')}: valid {_text(results.get('valid'))}")
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{title}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(s for s in sections if s)
        + "\n</body></html>\n"
    )


def write_report(
    directory: str | Path, results: dict[str, Any], plot_files: Sequence[str | Path]
) -> Path:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPORT_FILE
    path.write_text(render_report(out, results, plot_files), encoding="utf-8")
    return path
