"""The end-of-run scrape of every process's Prometheus endpoint, and its place in results.json.

After the drain and the settle, before the testbed stops, the runner fetches each
endpoint once. The raw exposition text goes to ``metrics-<component>.prom`` in the
results folder: everything the process exported, for promtool or any Prometheus
tooling. results.json gets a compact parsed summary per component (prometheus_client's
text parser): ``{sample name: {labels: value}}`` with the ``pcpu`` label summed away
(a pCPU host exports one series per pCPU and type: 4 096 pCPUs would be 100 000
series; the files keep each one) and the ``_created`` timestamps left out. Labels
are written ``name=value``, sorted by name and joined by commas (``""`` for none).
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SCRAPE_TIMEOUT_S = 10.0
SUMMED_LABELS = ("pcpu",)
ENDPOINTS_EVENT = "metrics_endpoints"
SCRAPED_EVENT = "metrics_scraped"

Summary = dict[str, dict[str, float | int]]


def fetch(url: str, timeout: float = SCRAPE_TIMEOUT_S) -> str:
    """The exposition text an endpoint serves (blocking; OSError when it does not answer)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode("utf-8"))


def prom_file(component: str) -> str:
    return f"metrics-{component}.prom"


async def scrape_to_files(urls: Mapping[str, str], directory: Path) -> dict[str, dict[str, Any]]:
    """Fetch every endpoint at once and write its text to its file.

    Returns, per component, ``{"file": name, "bytes": n}`` or ``{"error": why}``.
    """

    async def one(component: str, url: str) -> tuple[str, dict[str, Any]]:
        try:
            text = await asyncio.to_thread(fetch, url)
        except (OSError, ValueError) as exc:
            return component, {"error": f"{url}: {exc}"}
        name = prom_file(component)
        await asyncio.to_thread((directory / name).write_text, text, "utf-8")
        return component, {"file": name, "bytes": len(text)}

    done = await asyncio.gather(*(one(c, u) for c, u in urls.items()))
    return dict(done)


def _number(value: float) -> float | int:
    return int(value) if value.is_integer() else value


def summarize(text: str) -> Summary:
    """{sample name: {labels: value}} of an exposition text, SUMMED_LABELS summed away."""
    from prometheus_client.parser import text_string_to_metric_families

    summary: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = sorted(sample.labels.items())
            key = ",".join(f"{k}={v}" for k, v in labels if k not in SUMMED_LABELS)
            series = summary.setdefault(sample.name, {})
            series[key] = series.get(key, 0.0) + float(sample.value)
    return {
        name: {key: _number(value) for key, value in series.items()}
        for name, series in summary.items()
    }


def _runner_event(events: Sequence[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    found = [e for e in events if e.get("component") == "runner" and e.get("kind") == kind]
    return found[-1] if found else None


def metrics_results(
    events: Sequence[Mapping[str, Any]], results_dir: str, start_ns: int
) -> dict[str, Any]:
    """results.json's ``metrics`` (component: URL) and ``metrics_scrape`` (what was read)."""
    endpoints = _runner_event(events, ENDPOINTS_EVENT)
    scraped = _runner_event(events, SCRAPED_EVENT)
    urls = dict(endpoints.get("urls") or {}) if endpoints else {}
    if scraped is None:
        return {"metrics": urls, "metrics_scrape": None}
    components: dict[str, dict[str, Any]] = {}
    for component, outcome in dict(scraped.get("outcomes") or {}).items():
        entry = dict(outcome)
        if "file" in entry and results_dir:
            path = Path(results_dir) / str(entry["file"])
            try:
                entry["values"] = summarize(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                entry["error"] = f"cannot read {path.name}: {exc}"
        components[component] = entry
    return {
        "metrics": urls,
        "metrics_scrape": {
            "t_s": round((int(scraped["t_mono_ns"]) - start_ns) / 1e9, 3),
            "summed_labels": list(SUMMED_LABELS),
            "components": components,
        },
    }
