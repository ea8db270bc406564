"""`xenmca up`: a local testbed (pCPU hosts, coordinator, dom0) that runs until Ctrl-C.

With ``--hosts N`` (root only) the N pCPU host processes, the coordinator and
dom0 each run in their own network namespace (N + 2 of them, 169.254 addresses
on one bridge); the addresses printed for your commands are loopback ports that
lead into those namespaces.

Every process serves Prometheus metrics on a free port, printed at start with
the other addresses; ``prometheus-targets.json`` in the folder lists them for a
local Prometheus (``file_sd_configs``).

``--policy``, ``--policy-option``, ``--dom0-policy`` and ``--sal`` start the
coordinator, dom0 and the pCPUs' firmware with another policy than xenmca's
(e.g. ``--policy xen-ia64-2009`` to replay what Xen/ia64 shipped).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from xenmca.rpc.usage import UsageError

if TYPE_CHECKING:
    from xenmca.testbed.infra.launcher import LocalTestbed
    from xenmca.testbed.infra.spec import TestbedSpec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pcpus", type=int, default=8, help="simulated pCPUs (default 8)")
    parser.add_argument(
        "--pcpus-per-host", type=int, default=None, help="pCPUs per host process (default 64)"
    )
    parser.add_argument(
        "--hosts",
        type=int,
        default=None,
        metavar="N",
        help="N pCPU host processes, each in its own network namespace, plus one for the "
        "coordinator and one for dom0 (root only)",
    )
    parser.add_argument("--vcpu0-pcpu", type=int, default=0, help="pCPU dom0 vCPU0 runs on")
    parser.add_argument("--dir", type=Path, help="working folder (default: a new temp folder)")
    parser.add_argument(
        "--throttle-preset", default="fast", help="fast (default) or linux-ia64 (real intervals)"
    )
    parser.add_argument(
        "--tls", action="store_true", help="mutual TLS between the components (test certificates)"
    )
    parser.add_argument(
        "--agents",
        action="store_true",
        help="run each component under its host's `xenmca agent` and write target.json, the "
        "inventory of the testbed (addresses, agents, token file)",
    )
    parser.add_argument(
        "--clock-skew",
        action="append",
        default=[],
        type=_clock_skew,
        metavar="HOST=SECONDS",
        help="start HOST (pcpu-host0.., xen, dom0) with its monotonic clocks SECONDS ahead (whole "
        "seconds, may be negative), in a Linux time namespace (repeatable; --agents; root)",
    )
    parser.add_argument(
        "--policy",
        default="xenmca",
        metavar="NAME",
        help="the coordinator's policy: xenmca (default), xen-ia64-2006 or xen-ia64-2009",
    )
    parser.add_argument(
        "--policy-option",
        action="append",
        default=[],
        metavar="KNOB=CHOICE",
        help="override one knob of the coordinator's policy (repeatable), e.g. after_clear=head",
    )
    parser.add_argument(
        "--dom0-policy",
        default="xenmca",
        metavar="NAME",
        help="dom0's policy: xenmca (default) or linux-salinfo",
    )
    parser.add_argument(
        "--sal",
        default="extended",
        metavar="MODE",
        help="the pCPUs' firmware: extended (default, xenmca's SAL) or plain (real SAL only)",
    )


def _clock_skew(text: str) -> tuple[str, int]:
    """HOST=SECONDS (whole seconds) for --clock-skew."""
    host, sep, seconds = text.partition("=")
    try:
        if not sep or not host:
            raise ValueError
        return host, int(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected HOST=SECONDS with whole seconds, e.g. pcpu-host1=300 (got {text!r})"
        ) from None


def run(args: argparse.Namespace) -> int:
    from xenmca.rpc.lifecycle import run_until_signal, wait_for_stop_signal
    from xenmca.testbed.infra.clock_skew import check_clock_skew
    from xenmca.testbed.infra.launcher import LocalTestbed
    from xenmca.testbed.infra.netns import NetnsUnavailable
    from xenmca.testbed.infra.processes import ProcessStartError
    from xenmca.testbed.infra.spec import TestbedSpec
    from xenmca.xen.policy import parse_option

    if not 1 <= args.pcpus <= 4096:
        raise UsageError(f"--pcpus must be 1..4096 (got {args.pcpus})")
    if not 0 <= args.vcpu0_pcpu < args.pcpus:
        raise UsageError("--vcpu0-pcpu must be one of the pCPUs")
    problem = _policy_problem(args)
    if problem:
        raise UsageError(f"{problem}")
    network = "loopback"
    pcpus_per_host = 64 if args.pcpus_per_host is None else args.pcpus_per_host
    if args.hosts is not None:
        problem = _hosts_problem(args)
        if problem:
            raise UsageError(f"{problem}")
        network = "netns"
        pcpus_per_host = -(-args.pcpus // args.hosts)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="xenmca-up-"))
    spec = TestbedSpec(
        workdir=workdir,
        pcpus=args.pcpus,
        pcpus_per_host=pcpus_per_host,
        vcpu0_pcpu=args.vcpu0_pcpu,
        throttle_preset=args.throttle_preset,
        network=network,
        tls=args.tls,
        xen_policy=args.policy,
        xen_policy_options=dict(parse_option(text) for text in args.policy_option),
        dom0_policy=args.dom0_policy,
        sal_mode=args.sal,
        metrics=True,
        agents=args.agents,
        clock_skew_s=dict(args.clock_skew),
    )
    check_clock_skew(spec, LocalTestbed(spec).host_names())

    async def up() -> int:
        try:
            async with LocalTestbed(spec) as bed:
                first, last = min(bed.pcpu_addresses), max(bed.pcpu_addresses)
                print(f"coordinator  {bed.xen_address}")
                print(
                    f"pCPUs        {first}-{last} on {bed.pcpu_addresses[first]} .. "
                    f"{bed.pcpu_addresses[last]}"
                )
                if bed.network is not None:
                    _print_namespaces(bed)
                _print_metrics(bed)
                print(f"policy       {policy_line(spec)}")
                if bed.target_file is not None:
                    print(f"agents       {', '.join(sorted(bed.agent_addresses.values()))}")
                    print(f"inventory    {bed.target_file}")
                print(f"dom0 log     {bed.db_path}")
                print(f"tokens       {bed.token_file}")
                if args.tls:
                    tls_dir = bed.workdir / "tls"
                    print(f"certificates {tls_dir} (use operator.crt/.key with ca.crt: --tls-*)")
                print(f"folder       {workdir}")
                print("try:")
                print(f"  export XENMCA_TOKEN_FILE={bed.token_file}")
                print(f"  xenmca inject --pcpu {bed.pcpu_addresses[first]} --type cmc --count 3")
                print(f"  xenmca status --xen {bed.xen_address}")
                print(f"  xenmca log summary --db {bed.db_path}")
                print("Ctrl-C stops everything.", flush=True)
                await wait_for_stop_signal()
                print("stopping...", flush=True)
        except ProcessStartError as exc:
            print(f"xenmca up: error: testbed did not start: {exc}", file=sys.stderr)
            return 3  # could not run (xenmca.exit_status)
        except NetnsUnavailable as exc:
            print(f"xenmca up: error: --hosts: {exc}", file=sys.stderr)
            return 3
        return 0

    return run_until_signal(up, spawns_processes=True)


def _policy_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with --policy, --policy-option, --dom0-policy or --sal (None: nothing)."""
    from xenmca.testbed.infra.launcher_args import DOM0_POLICIES
    from xenmca.xen.policy import POLICIES, SAL_MODES, PolicyError, parse_option

    if args.policy not in POLICIES:
        return f"--policy: unknown policy {args.policy!r} (known: {', '.join(POLICIES)})"
    for text in args.policy_option:
        try:
            parse_option(text)
        except PolicyError as exc:
            return f"--policy-option: {exc}"
    if args.dom0_policy not in DOM0_POLICIES:
        return (
            f"--dom0-policy: unknown policy {args.dom0_policy!r} "
            f"(known: {', '.join(DOM0_POLICIES)})"
        )
    if args.sal not in SAL_MODES:
        return f"--sal: unknown SAL mode {args.sal!r} (known: {', '.join(SAL_MODES)})"
    return None


def policy_line(spec: TestbedSpec) -> str:
    """``xen-ia64-2009+after_clear=head, dom0 xenmca, SAL extended``."""
    from xenmca.xen.policy import PolicySpec

    xen = PolicySpec(spec.xen_policy, spec.xen_policy_options).label
    return f"{xen}, dom0 {spec.dom0_policy}, SAL {spec.sal_mode}"


def _hosts_problem(args: argparse.Namespace) -> str | None:
    """Why --hosts cannot be used with these arguments (None when it can)."""
    from xenmca.testbed.infra.netns import NetnsUnavailable, check_available

    if args.pcpus_per_host is not None:
        return "--hosts and --pcpus-per-host cannot be combined (--hosts sets the split)"
    if not 1 <= args.hosts <= args.pcpus:
        return f"--hosts must be 1..{args.pcpus} (one pCPU at least per host; got {args.hosts})"
    per_host = -(-args.pcpus // args.hosts)
    filled = -(-args.pcpus // per_host)
    if filled != args.hosts:
        return (
            f"--pcpus {args.pcpus} cannot be spread over {args.hosts} hosts (each host gets "
            f"{per_host} pCPUs, which fills only {filled}); try --pcpus {per_host * args.hosts}"
        )
    try:
        check_available()
    except NetnsUnavailable as exc:
        return f"--hosts: {exc}"
    return None


def _print_metrics(bed: LocalTestbed) -> None:
    """Each process's Prometheus endpoint (a few hosts, then the last), and the target file."""
    from xenmca.testbed.infra.metrics_ports import write_targets

    if not bed.metrics_urls:
        return
    names = list(bed.metrics_urls)
    hosts = [n for n in names if n.startswith("pcpu-host")]
    shown = [n for n in names if n not in hosts] + hosts[:3]
    for index, name in enumerate(shown):
        label = "metrics" if index == 0 else ""
        print(f"{label:<12} {name:<12} {bed.metrics_urls[name]}")
    if len(hosts) > 3:
        print(f"{'':<12} {'...':<12} {hosts[-1]} {bed.metrics_urls[hosts[-1]]}")
    targets = write_targets(bed.workdir, bed.metrics_urls)
    print(f"{'':<12} Prometheus file_sd targets: {targets}")


def _print_namespaces(bed: LocalTestbed) -> None:
    """One line per namespace: its name, its 169.254 address and what runs in it."""
    network = bed.network
    assert network is not None
    print(f"namespaces   {network.prefix}-* (bridge in {network.switch_namespace})")
    for process in bed.processes:
        host = process.name
        if host == "xen":
            what = f"coordinator, listening on {bed.xen_listen_address}"
        elif host == "dom0":
            what = "dom0"
        else:
            pcpus = [p for p in bed.pcpu_listen_addresses if bed.network_host_of(p) == host]
            first, last = (
                bed.pcpu_listen_addresses[min(pcpus)],
                bed.pcpu_listen_addresses[max(pcpus)],
            )
            what = (
                f"pCPUs {min(pcpus)}-{max(pcpus)} on ports "
                f"{first.rpartition(':')[2]}-{last.rpartition(':')[2]}"
            )
        print(f"  {network.namespace_of(host):<30} {network.address_of(host):<16} {what}")
