"""Plots, report.html and the terminal summary from a hand-built run of a few hundred records."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import matplotlib
from rich.console import Console
from test_checkers_data import synthetic_run

from xenmca.testbed.check.checkers import run_checks
from xenmca.testbed.report.html import write_report
from xenmca.testbed.report.plots import polling_spans, write_plots
from xenmca.testbed.report.summary import print_summary
from xenmca.testbed.run.results import build_results

PNG = b"\x89PNG\r\n\x1a\n"
PLOTS = ["latency.png", "rates.png", "queue_depth.png", "throttle.png"]


def test_plots_use_agg_and_write_every_png(tmp_path: Path) -> None:
    data = synthetic_run(records_per_pcpu=150, pcpus=2, spacing_ms=5.0)
    written = write_plots(tmp_path, data)
    assert matplotlib.get_backend().lower() == "agg"
    assert [p.name for p in written] == PLOTS
    for path in written:
        assert path.parent == tmp_path
        assert path.read_bytes()[:8] == PNG


def test_plots_of_an_empty_run(tmp_path: Path) -> None:
    data = synthetic_run(records_per_pcpu=0, storm=False)
    empty = dataclasses.replace(data, samples=[], faults=[])
    for path in write_plots(tmp_path, empty):
        assert path.read_bytes()[:8] == PNG


def test_polling_spans_per_line() -> None:
    data = synthetic_run()
    assert polling_spans(data) == {(1, "CMC"): [(0.5, 0.7)]}
    assert polling_spans(synthetic_run(storm=False)) == {}


def test_report_shows_verdict_tables_and_plots(tmp_path: Path) -> None:
    data = synthetic_run(records_per_pcpu=100)
    name = "<script>alert(1)</script>"
    data = dataclasses.replace(data, scenario=dataclasses.replace(data.scenario, name=name))
    results = build_results(data, run_checks(data))
    path = write_report(tmp_path, results, write_plots(tmp_path, data))
    page = path.read_text()
    assert path.name == "report.html"
    assert "valid: true" in page
    for plot in PLOTS:
        assert f'src="{plot}"' in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "conservation" in page and "transition:pcpu1:CMC:polling" in page
    assert not re.search(r"(src|href)=\"https?:", page)  # self-contained


def test_report_of_an_invalid_run(tmp_path: Path) -> None:
    data = synthetic_run()
    lossy = dataclasses.replace(data, log=data.log[1:], problems=["samples: none taken"])
    results = build_results(lossy, run_checks(lossy))
    page = write_report(tmp_path, results, []).read_text()
    assert "valid: false" in page and "samples: none taken" in page
    assert "<h2>Named records</h2>" in page and "<h3>conservation: 1 named</h3>" in page
    assert "<td class=num>1</td><td>created, never logged, not pending</td>" in page
    assert "<h2>Policy</h2>" in page


def test_report_and_summary_name_few_of_many_records(tmp_path: Path) -> None:
    data = synthetic_run(records_per_pcpu=40)
    lossy = dataclasses.replace(data, log=[r for r in data.log if r.pcpu != 1])
    results = build_results(lossy, run_checks(lossy))
    conservation = next(c for c in results["checks"] if c["name"] == "conservation")
    assert (len(conservation["records"]), conservation["records_total"]) == (40, 40)
    page = write_report(tmp_path, results, []).read_text()
    assert "<h3>conservation: 40 named</h3>" in page
    console = Console(record=True, width=300, color_system=None)
    print_summary(results, console)
    text = console.export_text()
    assert "40 named: pCPU 1 CMC #1 (created, never logged, not pending), pCPU 1 CMC #2" in text
    assert "pCPU 1 CMC #5 (created, never logged, not pending), and 35 more" in text
    assert "pCPU 1 CMC #6 " not in text


def test_summary_prints_records_checks_and_path() -> None:
    data = synthetic_run()
    data = dataclasses.replace(data, problems=["pCPUs [3] did not answer"], results_dir="/x/y")
    console = Console(record=True, width=140, color_system=None)
    print_summary(build_results(data, run_checks(data)), console)
    text = console.export_text()
    assert "VALIDITY UNKNOWN" in text
    assert "cleared_before_logged" in text and "lines_back_to_interrupt" in text
    assert "stranded" in text and "fairness" in text and "isolation" in text
    assert "[would be pass" in text  # rich markup in details is escaped, not eaten
    assert "results: /x/y" in text


def test_report_and_summary_show_the_calibration_and_the_metrics_scrape(tmp_path: Path) -> None:
    from test_check_latency import relative_run

    data = relative_run(latency_ms=5.0, floors=100, end=(1.0, 3.0))
    scraped = tmp_path / "metrics-xen.prom"
    scraped.write_text("# TYPE xenmca_xen_retries_total counter\nxenmca_xen_retries_total 2.0\n")
    url = "http://127.0.0.1:9/metrics"
    events = [
        *data.events,
        {"component": "runner", "kind": "metrics_endpoints", "t_mono_ns": 0, "urls": {"xen": url}},
        {
            "component": "runner",
            "kind": "metrics_scraped",
            "t_mono_ns": data.end_ns,
            "outcomes": {"xen": {"file": scraped.name, "bytes": 9}, "dom0": {"error": "refused"}},
        },
    ]
    data = dataclasses.replace(data, events=events, results_dir=str(tmp_path))
    results = build_results(data, run_checks(data))
    assert results["metrics"] == {"xen": url}
    xen = results["metrics_scrape"]["components"]["xen"]
    assert xen["values"] == {"xenmca_xen_retries_total": {"": 2}}
    page = write_report(tmp_path, results, []).read_text()
    assert "<h2>Calibration</h2>" in page and "relative latency bounds use 7 ms (end)" in page
    assert "<h2>Metrics</h2>" in page and "metrics-xen.prom" in page and "refused" in page
    console = Console(record=True, width=140, color_system=None)
    print_summary(results, console)
    text = console.export_text()
    assert "round trip / commit / floor (end)" in text and "1.00 / 3.00 / 7.00 ms" in text
    assert "metrics: scraped 1 of 2 endpoints" in text and "(no answer: dom0)" in text
    assert "they served http://127.0.0.1:PORT/metrics: xen 9" in text
