"""The command lines of a local testbed's components, built from its TestbedSpec.

The policies (`TestbedSpec.xen_policy`, ``dom0_policy``, ``sal_mode`` ...) reach
the processes as flags only when they differ from the defaults. Metrics flags
(``--metrics-port``, ``--metrics-host``) are added by the launcher when the spec
asks for metrics (see `xenmca.testbed.infra.metrics_ports`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from xenmca.dom0 import policies as dom0_policies
from xenmca.dom0.salinfo import LINUX_SALINFO
from xenmca.xen.policy import DEFAULT_POLICY, SAL_MODES, PolicyError, PolicySpec

if TYPE_CHECKING:
    from xenmca.testbed.infra.spec import TestbedSpec

DOM0_POLICIES = dom0_policies.POLICY_NAMES
DEFAULT_DOM0_POLICY = dom0_policies.DEFAULT_POLICY
DEFAULT_SAL_MODE = "extended"


def check_policies(spec: TestbedSpec) -> None:
    """PolicyError (a ValueError, one line naming the setting) if a policy is unknown."""
    PolicySpec(spec.xen_policy, spec.xen_policy_options).choices()
    if spec.dom0_policy not in DOM0_POLICIES:
        raise PolicyError(
            f"unknown dom0 policy {spec.dom0_policy!r} (known: {', '.join(DOM0_POLICIES)})"
        )
    if spec.sal_mode not in SAL_MODES:
        raise PolicyError(f"unknown SAL mode {spec.sal_mode!r} (known: {', '.join(SAL_MODES)})")
    delay = spec.salinfo_decode_delay
    if delay is not None and not delay >= 0:
        raise PolicyError(f"salinfo decode delay must be >= 0 seconds (got {delay})")
    if delay is not None and spec.dom0_policy != LINUX_SALINFO:
        raise PolicyError(
            f"a salinfo decode delay applies only to dom0 policy {LINUX_SALINFO} "
            f"(dom0 policy is {spec.dom0_policy})"
        )


def xen_policy_args(spec: TestbedSpec) -> list[str]:
    """`serve xen` flags for the spec's coordinator policy and SAL mode (none for defaults)."""
    args: list[str] = []
    if spec.xen_policy != DEFAULT_POLICY:
        args += ["--policy", spec.xen_policy]
    for knob, choice in spec.xen_policy_options.items():
        args += ["--policy-option", f"{knob}={choice}"]
    if spec.sal_mode != DEFAULT_SAL_MODE:
        args += ["--sal", spec.sal_mode]
    return args


def pcpu_policy_args(spec: TestbedSpec) -> list[str]:
    """`serve pcpu` flags for the spec's SAL mode (none for the default)."""
    return ["--sal", spec.sal_mode] if spec.sal_mode != DEFAULT_SAL_MODE else []


def dom0_policy_args(spec: TestbedSpec) -> list[str]:
    """`dom0` flags for the spec's dom0 policy and decode delay (none for defaults)."""
    args: list[str] = []
    if spec.dom0_policy != DEFAULT_DOM0_POLICY:
        args += ["--policy", spec.dom0_policy]
    if spec.salinfo_decode_delay is not None:
        args += ["--salinfo-decode-delay", str(spec.salinfo_decode_delay)]
    return args


def pcpu_host_argv(
    spec: TestbedSpec, index: int, pcpus: tuple[int, int], host: str, base_port: int
) -> list[str]:
    """`serve pcpu` for pCPU host `index`, serving pCPUs first..last on host:base_port+i."""
    workdir = spec.workdir
    first, last = pcpus
    argv = [
        *("serve", "pcpu", "--pcpus", f"{first}-{last}", "--host", host),
        *("--base-port", str(base_port), "--capacity", str(spec.capacity)),
        *("--token-file", str(workdir / "tokens.json")),
        *("--events", str(workdir / f"events-pcpu-host{index}.jsonl")),
        *("--ready-file", str(workdir / f"ready-pcpu-host{index}.json")),
    ]
    if spec.durable_pcpus:
        argv += ["--state-dir", str(workdir / f"pcpu-state-host{index}")]
    return argv + pcpu_policy_args(spec)


def xen_argv(spec: TestbedSpec, listen: str, inventory: Path) -> list[str]:
    """`serve xen` listening on `listen`; writes the throttle settings file when there is one."""
    workdir = spec.workdir
    argv = [
        *("serve", "xen", "--listen", listen, "--inventory", str(inventory)),
        *("--vcpu0-pcpu", str(spec.vcpu0_pcpu), "--token-file", str(workdir / "tokens.json")),
        *("--throttle-preset", spec.throttle_preset),
        *("--events", str(workdir / "events-xen.jsonl")),
        *("--ready-file", str(workdir / "ready-xen.json")),
        *xen_policy_args(spec),
        *spec.extra_xen_args,
    ]
    if spec.throttle_overrides:
        # Every setting, whatever flag the coordinator has for it: a settings file.
        settings = workdir / "throttle.json"
        settings.write_text(json.dumps(dict(spec.throttle_overrides)))
        argv += ["--throttle-settings", str(settings)]
    return argv


def dom0_argv(spec: TestbedSpec, xen_address: str, db_path: Path) -> list[str]:
    """`dom0` logging to db_path from the coordinator at xen_address."""
    workdir = spec.workdir
    return [
        *("dom0", "--xen", xen_address, "--db", str(db_path)),
        *("--token-file", str(workdir / "tokens.json")),
        *("--events", str(workdir / "events-dom0.jsonl")),
        *("--cpe-poll-min", str(spec.cpe_poll_min), "--cpe-poll-max", str(spec.cpe_poll_max)),
        *dom0_policy_args(spec),
    ]
