"""Prometheus endpoints of a local testbed: one per process, on ports chosen free at start.

Every pCPU host process, the coordinator and dom0 serve ``/metrics``
(``--metrics-port``, ``--metrics-host``) on a port of the same block as the
gRPC ports (the launcher picks ``pcpus + 1 + len(components)`` consecutive free
ports), so a component restarted after a kill serves its metrics on the same
port again. The launcher reaches the endpoints at ``metrics_urls`` (loopback
addresses, also with network namespaces, through the launcher's gateway).

``prometheus-targets.json`` in the testbed's folder lists them in Prometheus'
``file_sd_configs`` format, labelled as deploy/prometheus labels its targets
(``component``: coordinator, dom0 or pcpu-host; ``pod``: the process), so a local
Prometheus can scrape a testbed started by ``xenmca up`` and the Grafana
dashboard in deploy/grafana shows it.
"""

from __future__ import annotations

import json
from pathlib import Path

TARGETS_FILE = "prometheus-targets.json"
METRICS_PATH = "/metrics"


def metrics_flags(host: str, port: int) -> list[str]:
    """The flags that make a component serve its metrics on host:port."""
    return ["--metrics-port", str(port), "--metrics-host", host]


def assign_ports(components: list[str], first_port: int) -> dict[str, int]:
    """Consecutive ports from first_port, one per component, in the order given."""
    return {name: first_port + index for index, name in enumerate(components)}


def metrics_url(address: str) -> str:
    """``http://HOST:PORT/metrics`` for an address "HOST:PORT"."""
    return f"http://{address}{METRICS_PATH}"


def component_label(process: str) -> str:
    """The ``component`` label deploy/prometheus gives a process: coordinator, dom0, pcpu-host."""
    return {"xen": "coordinator", "dom0": "dom0"}.get(process, "pcpu-host")


def write_targets(directory: Path, urls: dict[str, str]) -> Path:
    """The endpoints as a Prometheus file_sd target list (one group per process)."""
    groups = [
        {
            "targets": [url.removeprefix("http://").removesuffix(METRICS_PATH)],
            "labels": {"component": component_label(process), "pod": process},
        }
        for process, url in urls.items()
    ]
    path = directory / TARGETS_FILE
    path.write_text(json.dumps(groups, indent=2) + "\n", encoding="utf-8")
    return path


def endpoints_text(urls: dict[str, str]) -> str:
    """``http://127.0.0.1:PORT/metrics: xen 4101, dom0 4102, pcpu-host0 4099``.

    The coordinator and dom0 first; every URL in full when they differ in more than the port.
    """
    order = [n for n in ("xen", "dom0") if n in urls] + [
        n for n in urls if n not in ("xen", "dom0")
    ]
    pattern, ports = "", {}
    for name in order:
        head, _, rest = urls[name].rpartition(":")
        port, _, path = rest.partition("/")
        if pattern not in ("", f"{head}:PORT/{path}"):
            return ", ".join(f"{n} {urls[n]}" for n in order)
        pattern, ports[name] = f"{head}:PORT/{path}", port
    return f"{pattern}: " + ", ".join(f"{n} {ports[n]}" for n in order)
