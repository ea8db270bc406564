"""`xenmca serve xen`: run the coordinator (HypervisorService) until SIGTERM/SIGINT.

With ``--tls-cert/--tls-key/--tls-ca`` it serves mutual TLS only and connects to
the pCPUs with the same certificate (the coordinator's identity, CN ``xen``);
``--health-listen HOST:PORT`` adds a plaintext, health-only listener for probes;
``--metrics-port PORT`` serves Prometheus metrics over HTTP (0: any free port, logged).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from xenmca.rpc.clock import Clock
from xenmca.rpc.flags import add_deprecated_flag, numbered_pcpu_arg
from xenmca.rpc.health_listener import add_health_listen_argument, check_health_listen
from xenmca.rpc.lifecycle import Setup
from xenmca.rpc.metrics import add_metrics_arguments
from xenmca.rpc.tls import add_tls_arguments, load_tls_from_args
from xenmca.rpc.usage import UsageError
from xenmca.xen.throttle_settings import ThrottleSettings

log = logging.getLogger("xenmca.xen")

PROG = "xenmca serve xen"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", default="127.0.0.1:50050", help="HOST:PORT to serve on")
    parser.add_argument(
        "--pcpu",
        action="append",
        default=[],
        type=numbered_pcpu_arg,
        metavar="N=HOST:PORT",
        help="where pCPU N's SalService listens (repeat for each pCPU)",
    )
    add_deprecated_flag(
        parser,
        "--pcpu-addr",
        dest="pcpu",
        use="--pcpu N=HOST:PORT",
        append=True,
        type=numbered_pcpu_arg,
    )
    parser.add_argument("--inventory", type=Path, help="file listing pCPU ids and addresses")
    parser.add_argument("--vcpu0-pcpu", type=int, default=0, help="pCPU dom0 vCPU0 runs on")
    parser.add_argument("--events", type=Path, help="write structured events (JSON lines) here")
    parser.add_argument("--token-file", help="identity tokens (YAML/JSON {identity: token})")
    parser.add_argument(
        "--inject-cpe",
        action="store_true",
        help="inject CPE as a virtual interrupt too (default: dom0 polls CPE)",
    )
    parser.add_argument("--ready-file", type=Path, help="write {address} as JSON once serving")
    add_health_listen_argument(parser)
    add_tls_arguments(parser)
    add_metrics_arguments(parser)
    parser.add_argument(
        "--pipelined",
        action="store_true",
        help="read the next record ahead by IPI and answer CLEAR while it is on its way",
    )
    policy = parser.add_argument_group("policy (see `xenmca serve xen --help` and the README)")
    policy.add_argument(
        "--policy",
        default="xenmca",
        help="xenmca (the default design), xen-ia64-2006 or xen-ia64-2009 (as shipped)",
    )
    policy.add_argument(
        "--policy-option",
        action="append",
        default=[],
        metavar="KNOB=CHOICE",
        help="override one choice of the policy, e.g. after_clear=head (repeatable)",
    )
    policy.add_argument(
        "--sal",
        choices=("extended", "plain"),
        default="extended",
        help="the pCPUs' firmware: extended (clear by id, counters) or plain SAL",
    )
    # Test-only; refused unless XENMCA_ALLOW_BROKEN_RULES=1 is set.
    parser.add_argument("--broken-rule", help=argparse.SUPPRESS)
    throttle = parser.add_argument_group(
        "throttling (seconds; a preset, then the file, then flags)"
    )
    throttle.add_argument(
        "--throttle-preset", default="linux-ia64", help="linux-ia64 (real values) or fast"
    )
    throttle.add_argument("--throttle-settings", type=Path, help="YAML/JSON file of settings")
    throttle.add_argument(
        "--throttle-policy",
        help="the storm rule: ia64 (mca.c, the default), x86-cmci (Linux mce/threshold.c) "
        "or leaky-bucket (mcelog)",
    )
    throttle.add_argument("--history-length", type=int, help="interrupts that make a storm (5)")
    throttle.add_argument("--storm-window", type=float, help="within this many seconds (1)")
    throttle.add_argument("--cmc-poll-interval", type=float, help="CMC polling interval (60)")
    throttle.add_argument("--cpe-poll-min", type=float, help="shortest CPE interval (120)")
    throttle.add_argument("--cpe-poll-max", type=float, help="longest CPE interval (900)")
    throttle.add_argument(
        "--cpe-no-interrupt", action="store_true", help="CPE lines have no vector: always poll"
    )


def throttle_from_args(args: argparse.Namespace) -> ThrottleSettings:
    """The preset, then --throttle-settings, then the flags that were given.

    ThrottleSettingsError names the bad field.
    """
    from xenmca.xen.throttle_settings import load_settings

    return load_settings(
        args.throttle_preset,
        args.throttle_settings,
        {
            "history_length": args.history_length,
            "window": args.storm_window,
            "cmc_poll_interval": args.cmc_poll_interval,
            "cpe_poll_min": args.cpe_poll_min,
            "cpe_poll_max": args.cpe_poll_max,
            "cpe_can_interrupt": False if args.cpe_no_interrupt else None,
            "policy": args.throttle_policy,
        },
    )


def setup_from_args(args: argparse.Namespace, clock: Clock | None = None) -> Setup:
    """The coordinator's part of run_component for these arguments (UsageError when bad).

    clock: what the coordinator and its events read the time from (default: the machine's).
    """
    from xenmca.rpc.identity import TokenFileError, resolve_token_book
    from xenmca.xen.inventory import (
        InventoryError,
        load_inventory,
        merge_inventories,
        parse_pcpu_addr_flags,
    )
    from xenmca.xen.policy import PolicyError, PolicySpec, parse_option
    from xenmca.xen.throttle_settings import ThrottleSettingsError

    try:
        pcpus = merge_inventories(
            parse_pcpu_addr_flags(str(flag) for flag in args.pcpu),
            load_inventory(args.inventory) if args.inventory else {},
        )
        tokens = resolve_token_book(args.token_file)
        throttle = throttle_from_args(args)
        check_health_listen(args.health_listen)
        tls = load_tls_from_args(args)
        args.policy_spec = PolicySpec(
            args.policy, dict(parse_option(text) for text in args.policy_option)
        )
        choices = args.policy_spec.choices()
    except PolicyError as exc:
        raise UsageError(f"--policy: {exc}") from exc
    except (InventoryError, TokenFileError, ThrottleSettingsError, ValueError) as exc:
        # ValueError: TlsFileError, a bad --health-listen
        raise UsageError(str(exc)) from exc
    if args.pipelined:
        from xenmca.xen.coordinator import pipeline_conflict

        conflict = pipeline_conflict(choices, args.policy_spec.label)
        if conflict is not None:
            raise UsageError(f"--pipelined: {conflict}")
    if args.broken_rule is not None:
        from xenmca.vocab import ALLOW_BROKEN_RULES_ENV
        from xenmca.xen.coordinator import BROKEN_RULES

        if os.environ.get(ALLOW_BROKEN_RULES_ENV) != "1":
            raise UsageError(f"--broken-rule is for tests only (set {ALLOW_BROKEN_RULES_ENV}=1)")
        if args.broken_rule not in BROKEN_RULES:
            raise UsageError(
                f"unknown --broken-rule {args.broken_rule!r} (known: {', '.join(BROKEN_RULES)})"
            )
    if not pcpus:
        raise UsageError("no pCPUs: give --pcpu N=HOST:PORT or --inventory")
    if args.vcpu0_pcpu not in pcpus:
        raise UsageError(f"--vcpu0-pcpu {args.vcpu0_pcpu} is not a listed pCPU")
    from xenmca.xen.runner import setup

    return lambda stack: setup(stack, args, pcpus, tokens, throttle, tls, clock)


def run(args: argparse.Namespace) -> int:
    from xenmca.rpc.lifecycle import run_component, run_until_signal

    setup = setup_from_args(args)
    return run_until_signal(lambda: run_component(PROG, setup, ready_file=args.ready_file))
