"""deploy/grafana's dashboard asks only for metrics the code exports, and shows what it must.

The exported names come from the real registries (an in-process pCPU host and
coordinator, and dom0's metrics on a logger that is not started), family by
family with the series names each type exposes (a counter's ``_total``, a
histogram's ``_bucket``, ``_sum`` and ``_count``). Every PromQL expression of the
dashboard is tokenised and its metric names (identifiers that are not functions,
keywords or label names in ``by (...)``/``without (...)``) must be among them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flow_harness import flow_bed
from prometheus_client import CollectorRegistry

from xenmca.dom0.log_store import LogStore
from xenmca.dom0.logger import Dom0Logger
from xenmca.dom0.metrics import Dom0Metrics
from xenmca.pcpu.metrics import PcpuMetrics
from xenmca.rpc.identity import DOM0
from xenmca.xen.metrics import XenMetrics

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "xenmca-dashboard.json"

SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
    "atan2",
}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<variable>\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?)
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<punct>[(){},=!~<>+\-*/^%]+)
  | (?P<space>\s+)
    """,
    re.VERBOSE,
)


def tokens(expr: str) -> list[tuple[str, str]]:
    found, position = [], 0
    while position < len(expr):
        match = TOKEN.match(expr, position)
        assert match is not None, f"cannot read {expr[position:]!r} in {expr!r}"
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            found.append((kind, match.group()))
        position = match.end()
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label names and functions left out)."""
    found = tokens(expr)
    names: set[str] = set()
    in_braces = 0
    label_list = False
    for index, (kind, text) in enumerate(found):
        following = found[index + 1][1] if index + 1 < len(found) else ""
        if kind == "punct":
            in_braces += text.count("{") - text.count("}")
            if label_list and ")" in text:
                label_list = False
            continue
        if kind != "name" or in_braces or label_list:
            continue
        if text in LABEL_LIST_KEYWORDS and following.startswith("("):
            label_list = True
            continue
        if (
            text.lower() in KEYWORDS
            or following.startswith("(")
            or following in LABEL_LIST_KEYWORDS
        ):
            continue  # a keyword, a function called here, or an aggregation (sum by (...) (...))
        names.add(text)
    return names


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def series_of(registry: CollectorRegistry) -> set[str]:
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in SERIES_SUFFIXES[family.type])
    return names


async def exported_series(tmp_path: Path) -> set[str]:
    async with flow_bed(pcpus=1) as bed:
        store = await LogStore.open(tmp_path / "dom0.sqlite")
        try:
            logger = Dom0Logger(bed.xen_address, store, token=bed.tokens.token_for(DOM0))
            registries = [
                PcpuMetrics(bed.host).registry,
                XenMetrics(bed.coordinator).registry,
                Dom0Metrics(logger).registry,
            ]
            return set().union(*(series_of(r) for r in registries))
        finally:
            await store.close()


# --- the extractor itself ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("sum by (type) (xenmca_xen_queue_depth)", {"xenmca_xen_queue_depth"}),
        (
            'histogram_quantile(0.99, sum by (le) (rate(a_bucket{path="ipi"}[$__rate_interval])))',
            {"a_bucket"},
        ),
        ("sum(rate(a_total[5m])) / sum(rate(b_total[5m]))", {"a_total", "b_total"}),
        ("a / on (pcpu) group_left (type) b", {"a", "b"}),
        ("max without (pod) (up{job='xenmca', le=~\"0.1|+Inf\"}) > bool 0", {"up"}),
        ("count(x offset 5m) * 2e3", {"x"}),
    ],
)
def test_metric_names_are_found_and_labels_functions_and_keywords_are_not(
    expr: str, names: set[str]
) -> None:
    assert metric_names(expr) == names


# --- the dashboard ---------------------------------------------------------------------------


def test_the_dashboard_is_a_grafana_dashboard_on_a_prometheus_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


async def test_every_metric_the_dashboard_asks_for_is_exported(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = await exported_series(tmp_path)
    asked = {name: title for title, expr in expressions(dashboard) for name in metric_names(expr)}
    assert asked, "no metric found in the dashboard's expressions"
    missing = {name: title for name, title in asked.items() if name not in exported}
    assert missing == {}, f"not exported (by panel): {missing}"


def test_the_dashboard_shows_what_an_operator_needs() -> None:
    """Queue depth, records per second, IPI latency, retries, throttle mode per line and
    dom0's commit latency: each has a panel asking for its metric."""
    dashboard = json.loads(DASHBOARD.read_text())
    by_metric: dict[str, set[str]] = {}
    for title, expr in expressions(dashboard):
        for name in metric_names(expr):
            by_metric.setdefault(name, set()).add(title)
    wanted = {
        "Queue depth": "xenmca_xen_queue_depth",
        "Records per second": "xenmca_dom0_records_logged_total",
        "IPI latency": "xenmca_xen_ipi_latency_seconds_bucket",
        "Retries and failed calls": "xenmca_xen_retries_total",
        "Throttle mode per line": "xenmca_xen_throttle_mode",
        "dom0 commit latency": "xenmca_dom0_commit_latency_seconds_bucket",
    }
    for title, metric in wanted.items():
        assert title in by_metric.get(metric, set()), (title, metric)
    throttle = next(p for p in panels(dashboard) if p["title"] == "Throttle mode per line")
    (target,) = throttle["targets"]
    assert "pcpu" in target["legendFormat"] and "type" in target["legendFormat"]
    rates = next(p for p in panels(dashboard) if p["title"] == "Records per second")
    assert all("rate(" in t["expr"] for t in rates["targets"])
