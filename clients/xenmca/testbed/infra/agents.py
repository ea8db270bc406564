"""Components under agents: each process run as the child of its host's `xenmca agent`, and
the inventory (`target.json`) that tells a runner where everything is.

With `TestbedSpec.agents` the launcher starts `xenmca agent --listen HOST:PORT -- <the
component's command line>` instead of the component itself, so every host has the
supervisor a deployment has. The inventory lists, as this machine reaches them
(loopback ports into namespaces with `--hosts N`), the coordinator's address, every
pCPU's address, each host's agent, the token file and where dom0's log can be read:

    {"xen": {"address": "127.0.0.1:20008", "agent": "127.0.0.1:20012"},
     "dom0": {"agent": "127.0.0.1:20013", "db": "/tmp/xenmca-up-.../dom0.sqlite"},
     "pcpu_hosts": [{"name": "pcpu-host0", "pcpus": [0, 1, 2, 3],
                     "agent": "127.0.0.1:20010"}, ...],
     "pcpus": {"0": "127.0.0.1:20000", ...},
     "token_file": "/tmp/xenmca-up-.../tokens.json",
     "tls": {"cert": ".../tls/operator.crt", "key": ".../tls/operator.key",
             "ca": ".../tls/ca.crt"}}

`tls` is there only under mutual TLS (`xenmca up --agents --tls`): the operator's
certificate, which the runner presents to the components and to the agents.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xenmca.rpc.tls import TlsFiles

TARGET_FILE = "target.json"


def agent_argv(
    name: str,
    listen: str,
    workdir: Path,
    child_argv: list[str],
    tls_flags: list[str] | None = None,
) -> list[str]:
    """`xenmca agent` for the component `name`, listening on `listen`, running child_argv.

    tls_flags: the component's own certificate (`--tls-cert ... --tls-key ... --tls-ca ...`),
    which the agent presents too; callers are still checked for the operator's identity.
    """
    return [
        *("agent", "--listen", listen, "--token-file", str(workdir / "tokens.json")),
        *("--ready-file", str(workdir / f"ready-agent-{name}.json")),
        *("--events", str(workdir / f"events-agent-{name}.jsonl")),
        *(tls_flags or []),
        "--",
        *child_argv,
    ]


def target_inventory(
    xen_address: str,
    pcpu_addresses: dict[int, str],
    agent_addresses: dict[str, str],
    pcpu_hosts: list[tuple[str, int, int]],
    token_file: Path,
    dom0_db: Path,
    operator_tls: TlsFiles | None = None,
) -> dict[str, Any]:
    """The inventory of a testbed whose components run under agents.

    pcpu_hosts: (name, first pCPU, last pCPU) of each host. operator_tls: the operator's
    certificate, key and CA under mutual TLS (the inventory's `tls`).
    """
    inventory = {
        "xen": {"address": xen_address, "agent": agent_addresses["xen"]},
        "dom0": {"agent": agent_addresses["dom0"], "db": str(dom0_db)},
        "pcpu_hosts": [
            {"name": name, "pcpus": list(range(first, last + 1)), "agent": agent_addresses[name]}
            for name, first, last in pcpu_hosts
        ],
        "pcpus": {str(pcpu): address for pcpu, address in sorted(pcpu_addresses.items())},
        "token_file": str(token_file),
    }
    if operator_tls is not None:
        inventory["tls"] = {
            "cert": str(operator_tls.cert),
            "key": str(operator_tls.key),
            "ca": str(operator_tls.ca),
        }
    return inventory


def write_target(workdir: Path, inventory: dict[str, Any]) -> Path:
    path = workdir / TARGET_FILE
    path.write_text(json.dumps(inventory, indent=2) + "\n", encoding="utf-8")
    return path
