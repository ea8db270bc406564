"""After a run: check it, write results.json, the merged events, the plots and the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xenmca.testbed.check.checkers import run_checks
from xenmca.testbed.report.html import write_report
from xenmca.testbed.report.plots import write_plots
from xenmca.testbed.run.data import RunData
from xenmca.testbed.run.results import build_results, write_events, write_results


def finish_run(data: RunData) -> dict[str, Any]:
    out = Path(data.results_dir)
    checks = run_checks(data)
    results = build_results(data, checks)
    write_results(out, results)
    write_events(out, data.events)
    plots = write_plots(out, data)
    write_report(out, results, plots)
    return results
