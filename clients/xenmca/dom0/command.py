"""`xenmca dom0`: run dom0's error logger against a coordinator until SIGTERM/SIGINT.

``--metrics-port PORT`` serves Prometheus metrics over HTTP (0: any free port, logged).
``--health-listen HOST:PORT`` serves grpc.health.v1 in plaintext (and nothing
else): NOT_SERVING while dom0's log takes no commits (``xenmca.dom0.probes``).
``--policy`` chooses what dom0 does with each record: ``xenmca`` (the default:
commit, then CLEAR by record id) or ``linux-salinfo`` (what a Linux ia64 dom0
did: corrected records cleared at once and logged later by a daemon that takes
``--salinfo-decode-delay`` seconds per record).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path

from xenmca.dom0.log_store import LogOpenError, LogStore
from xenmca.dom0.logger import Dom0Logger
from xenmca.dom0.pacing import LINUX_CPE_POLL_MAX, LINUX_CPE_POLL_MIN, PollSettings
from xenmca.dom0.policies import DEFAULT_POLICY, POLICY_NAMES, make_policy
from xenmca.dom0.policy import Dom0Policy
from xenmca.dom0.probes import Dom0Probes
from xenmca.dom0.salinfo import DEFAULT_DECODE_DELAY, LINUX_SALINFO, check_decode_delay
from xenmca.rpc.clock import Clock
from xenmca.rpc.events import EventLog
from xenmca.rpc.health_listener import (
    HealthListener,
    add_health_listen_argument,
    check_health_listen,
)
from xenmca.rpc.identity import DOM0, TokenFileError, resolve_token_book
from xenmca.rpc.lifecycle import Setup, StartError, run_component, run_until_signal
from xenmca.rpc.metrics import add_metrics_arguments, start_metrics_endpoint
from xenmca.rpc.server import split_host_port
from xenmca.rpc.tls import (
    TlsFileError,
    TlsMaterial,
    add_tls_arguments,
    channel_credentials,
    load_tls_from_args,
)
from xenmca.rpc.usage import UsageError
from xenmca.vocab import RecordType

log = logging.getLogger("xenmca.dom0")

PROG = "xenmca dom0"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--xen", required=True, metavar="HOST:PORT", help="the coordinator")
    parser.add_argument("--db", required=True, type=Path, metavar="PATH", help="the SQLite log")
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help="token book (YAML/JSON identity: token); dom0's token is presented on every "
        "call (default: $XENMCA_TOKEN_FILE, else no token)",
    )
    parser.add_argument("--events", type=Path, metavar="FILE", help="write events as JSON lines")
    parser.add_argument("--instance", default="dom0", help="name of this dom0 in events")
    parser.add_argument(
        "--no-interrupt-on-clear",
        dest="carry_interrupts",
        action="store_false",
        help="take every virtual interrupt from the AttachDom0 stream, none on a CLEAR's "
        "reply (as dom0 clients that do not set carry_interrupt_for)",
    )
    parser.add_argument(
        "--cpe-poll-min",
        type=float,
        default=LINUX_CPE_POLL_MIN,
        metavar="S",
        help=f"shortest CPE poll interval in seconds (default {LINUX_CPE_POLL_MIN:g}, as Linux)",
    )
    parser.add_argument(
        "--cpe-poll-max",
        type=float,
        default=LINUX_CPE_POLL_MAX,
        metavar="S",
        help=f"longest CPE poll interval in seconds (default {LINUX_CPE_POLL_MAX:g}, as Linux)",
    )
    parser.add_argument(
        "--no-cpe-poll",
        action="store_true",
        help="do not poll for CPE records (when the coordinator injects CPE interrupts)",
    )
    parser.add_argument(
        "--policy",
        choices=POLICY_NAMES,
        default=DEFAULT_POLICY,
        help=f"what dom0 does with each record (default {DEFAULT_POLICY}: commit, then CLEAR "
        f"by record id; {LINUX_SALINFO}: what Linux ia64 did, corrected records cleared at "
        "once and kept in memory until its daemon logs them)",
    )
    parser.add_argument(
        "--salinfo-decode-delay",
        type=float,
        metavar="S",
        help=f"{LINUX_SALINFO} only: seconds salinfo_decode spends on each record before "
        f"it is committed, the modelled user-space pace (default {DEFAULT_DECODE_DELAY:g})",
    )
    add_health_listen_argument(parser)
    add_tls_arguments(parser)
    add_metrics_arguments(parser)


def _polled_types(args: argparse.Namespace) -> dict[int, PollSettings]:
    if args.no_cpe_poll:
        return {}
    try:
        return {RecordType.CPE: PollSettings(args.cpe_poll_min, args.cpe_poll_max)}
    except ValueError as exc:
        raise UsageError(f"--cpe-poll-min/--cpe-poll-max: {exc}") from exc


def _policy(args: argparse.Namespace) -> Dom0Policy:
    delay = args.salinfo_decode_delay
    if delay is not None:
        if args.policy != LINUX_SALINFO:
            raise UsageError(f"--salinfo-decode-delay applies only to --policy {LINUX_SALINFO}")
        try:
            check_decode_delay(delay)
        except ValueError as exc:
            raise UsageError(f"--salinfo-decode-delay: {exc}") from exc
    try:
        return make_policy(args.policy, salinfo_decode_delay=delay)
    except ValueError as exc:
        raise UsageError(f"--policy: {exc}") from exc


def _token(args: argparse.Namespace) -> str | None:
    try:
        book = resolve_token_book(args.token_file)
    except TokenFileError as exc:
        raise UsageError(str(exc)) from exc
    if book is None:
        return None
    token = book.token_for(DOM0)
    if token is None:
        raise UsageError(f"token file has no {DOM0!r} entry")
    return token


async def _setup(
    stack: contextlib.AsyncExitStack,
    args: argparse.Namespace,
    polled: dict[int, PollSettings],
    token: str | None,
    policy: Dom0Policy,
    tls: TlsMaterial | None = None,
    clock: Clock | None = None,
) -> None:
    """Open dom0's log, event log, metrics, health listener and logger into stack."""
    try:
        store = await LogStore.open(args.db, clock)
    except LogOpenError as exc:
        raise UsageError(str(exc)) from exc
    stack.push_async_callback(store.close)
    try:
        events = EventLog("dom0", args.events, clock)
    except OSError as exc:
        raise UsageError(f"cannot write events to {args.events}: {exc}") from exc
    stack.callback(events.close)
    logger = Dom0Logger(
        args.xen,
        store,
        token=token,
        instance=args.instance,
        events=events,
        clock=clock,
        polled_types=polled,
        credentials=channel_credentials(tls) if tls is not None else None,
        policy=policy,
        carry_interrupts=args.carry_interrupts,
    )
    if args.metrics_port is not None:
        from xenmca.dom0.metrics import Dom0Metrics

        metrics = start_metrics_endpoint(
            Dom0Metrics(logger).registry, args.metrics_host, args.metrics_port, log
        )
        stack.push_async_callback(metrics.aclose)
    # Entered before the probes so that they turn NOT_SERVING before the logger stops.
    stack.push_async_callback(_stop_logger, logger, args.instance)
    probes: Dom0Probes | None = None
    if args.health_listen is not None:
        try:
            probes = Dom0Probes(HealthListener(args.health_listen), logger.log_health)
        except (OSError, RuntimeError) as exc:
            raise StartError(str(exc)) from exc
        stack.push_async_callback(probes.stop)
        await probes.start()
    await logger.start()
    if probes is not None:
        await probes.serving()
        log.info("plaintext health-only listener on %s", probes.address)
    if tls is not None and tls.identity != DOM0:
        log.warning(
            "the TLS certificate's identity is %r, not %r: the coordinator answers "
            "dom0's SAL calls with -5",
            tls.identity,
            DOM0,
        )
    polling = ", ".join(f"CPE poll {s.min_interval:g}-{s.max_interval:g}s" for s in polled.values())
    log.info(
        "dom0 logging to %s from coordinator %s as %r, policy %s%s%s",
        args.db,
        args.xen,
        args.instance,
        policy.name,
        f" ({polling})" if polling else " (no polling)",
        f", mutual TLS as {tls.identity!r}" if tls is not None else "",
    )


async def _stop_logger(logger: Dom0Logger, instance: str) -> None:
    await logger.stop()
    c = logger.counters
    log.info(
        "dom0 %r stopped: %d records logged, %d duplicates dropped, %d polls",
        instance,
        c.records_logged,
        c.duplicates_dropped,
        c.polls,
    )


def setup_from_args(args: argparse.Namespace, clock: Clock | None = None) -> Setup:
    """dom0's part of run_component for these arguments (UsageError when they are bad).

    clock: what the logger, its log and its events read the time from (default: the machine's).
    """
    try:
        split_host_port(args.xen)
    except ValueError as exc:
        raise UsageError(f"--xen: {exc}") from exc
    try:
        check_health_listen(args.health_listen)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    polled = _polled_types(args)
    policy = _policy(args)
    token = _token(args)
    try:
        tls = load_tls_from_args(args)
    except TlsFileError as exc:
        raise UsageError(str(exc)) from exc
    return lambda stack: _setup(stack, args, polled, token, policy, tls, clock)


def run(args: argparse.Namespace) -> int:
    setup = setup_from_args(args)
    return run_until_signal(lambda: run_component(PROG, setup))
