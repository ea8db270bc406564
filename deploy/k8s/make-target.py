#!/usr/bin/env python3
"""Print the runner's inventory ConfigMap (target.json) for the deployment in deploy/k8s.

    python deploy/k8s/make-target.py N_HOSTS PCPUS_PER_HOST BASE_PORT > deploy/k8s/run/target.yaml

The same three numbers as make-inventory.py (and the same checks): the pCPU
addresses are make-inventory.py's, so the runner injects on exactly the addresses
the coordinator calls. `xenmca run --target` reads the ConfigMap's one file,
``target.json`` (the format of xenmca.testbed.infra.agents), mounted by run/job.yaml:

- ``xen``: the coordinator's Service and its agent's headless Service
  (``xen-coordinator-agent``);
- ``dom0``: its agent's headless Service (``dom0-agent``) and ``db``, where the Job
  mounts dom0's PVC (``/data/dom0.sqlite``);
- ``pcpu_hosts``: one per StatefulSet pod, ``pcpu-host-N``, its pCPUs and its agent
  at the pod's stable name behind the headless Service ``pcpu-hosts``;
- ``pcpus``: every pCPU's address, as in inventory.yaml;
- ``token_file`` and ``tls``: the tokens Secret and the operator's certificate
  (Secret ``xenmca-tls-operator``) where the Job mounts them.

The options --namespace, --statefulset, --service and --cluster-domain are
make-inventory.py's too; the ConfigMap is always ``xenmca-run-target`` (run/job.yaml's).
Deterministic, standard library only; validate.sh checks the committed file is fresh.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

AGENT_PORT = 50070
XEN_PORT = 50050
DOM0_DB = "/data/dom0.sqlite"
TOKEN_FILE = "/etc/xenmca/tokens/tokens.yaml"
TLS_DIR = "/etc/xenmca/tls"


def _make_inventory() -> ModuleType:
    """make-inventory.py (a file name with a dash: loaded by path)."""
    path = Path(__file__).with_name("make-inventory.py")
    spec = importlib.util.spec_from_file_location("make_inventory", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


INVENTORY = _make_inventory()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    # The same arguments and layout checks (its --name is the inventory's: unused here).
    args = INVENTORY.parse_args(
        argv,
        prog="make-target.py",
        description="Print the xenmca runner's inventory ConfigMap (target.json) for the "
        "deployment in deploy/k8s.",
    )
    args.name = "xenmca-run-target"
    return args


def service_address(args: argparse.Namespace, service: str, port: int) -> str:
    return f"{service}.{args.namespace}.svc.{args.cluster_domain}:{port}"


def target(args: argparse.Namespace) -> dict[str, Any]:
    per_host = args.pcpus_per_host
    return {
        "xen": {
            "address": service_address(args, "xen-coordinator", XEN_PORT),
            "agent": service_address(args, "xen-coordinator-agent", AGENT_PORT),
        },
        "dom0": {"agent": service_address(args, "dom0-agent", AGENT_PORT), "db": DOM0_DB},
        "pcpu_hosts": [
            {
                "name": f"{args.statefulset}-{ordinal}",
                "pcpus": list(range(ordinal * per_host, (ordinal + 1) * per_host)),
                "agent": f"{INVENTORY.pod_host(args, ordinal)}:{AGENT_PORT}",
            }
            for ordinal in range(args.n_hosts)
        ],
        "pcpus": {
            str(pcpu): INVENTORY.pod_address(args, pcpu) for pcpu in range(args.n_hosts * per_host)
        },
        "token_file": TOKEN_FILE,
        "tls": {
            "cert": f"{TLS_DIR}/tls.crt",
            "key": f"{TLS_DIR}/tls.key",
            "ca": f"{TLS_DIR}/ca.crt",
        },
    }


def render_json(value: Any, indent: str = "") -> list[str]:
    """JSON, one key per line, but a list of numbers on one line (4 096 pCPUs stay short)."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = list(value.items())
        lines = ["{"]
        for index, (key, item) in enumerate(items):
            rendered = render_json(item, inner)
            rendered[0] = f"{inner}{json.dumps(key)}: {rendered[0]}"
            if index < len(items) - 1:
                rendered[-1] += ","
            lines.extend(rendered)
        return [*lines, f"{indent}}}"]
    if isinstance(value, list) and value and not all(isinstance(v, int) for v in value):
        lines = ["["]
        for index, item in enumerate(value):
            rendered = render_json(item, inner)
            rendered[0] = inner + rendered[0]
            if index < len(value) - 1:
                rendered[-1] += ","
            lines.extend(rendered)
        return [*lines, f"{indent}]"]
    return [json.dumps(value, separators=(", ", ": "))]


def render(args: argparse.Namespace) -> str:
    total = args.n_hosts * args.pcpus_per_host
    summary = (
        f"# The runner's inventory: {total} pCPUs on {args.n_hosts} pods of StatefulSet "
        f"{args.statefulset}, the coordinator, dom0 and every agent (port {AGENT_PORT})."
    )
    command = INVENTORY.command_line("make-target.py", args)
    lines: list[str] = INVENTORY.configmap_head(args, command, summary, "runner", "target.json")
    lines.extend(f"    {line}" for line in render_json(target(args)))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    sys.stdout.write(render(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
