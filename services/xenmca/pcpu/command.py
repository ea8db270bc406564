"""`xenmca serve pcpu`: host one or many simulated pCPUs until SIGTERM/SIGINT.

    xenmca serve pcpu --pcpu 0 --listen 127.0.0.1:50100
    xenmca serve pcpu --pcpus 0-63 --host 127.0.0.1 --base-port 50100 --state-dir DIR

pCPU i listens on base-port + i. ``--sal plain`` gives every hosted pCPU plain
SAL (GET oldest, CLEAR current, GET_SIZE, nothing more); the default is
``--sal extended`` (xenmca's extensions: clear by id, counters).

``--ready-file`` is written (JSON {"<pcpu>": "host:port"}) once every server is
serving, and removed on a clean stop, so a launcher can wait for it.

With ``--tls-cert/--tls-key/--tls-ca`` every pCPU serves mutual TLS only (the
callers' identities come from their certificates); ``--health-listen HOST:PORT``
adds a plaintext, health-only listener for probes. ``--metrics-port PORT`` serves
Prometheus metrics of every hosted pCPU over HTTP (0: any free port, logged).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from xenmca.pcpu.durable import StateDirError
from xenmca.pcpu.model import MAX_CAPACITY, SalMode
from xenmca.pcpu.server import DEFAULT_CAPACITY, HostStartError, PcpuHost, join_host_port
from xenmca.rpc.clock import Clock
from xenmca.rpc.events import EventLog
from xenmca.rpc.health_listener import (
    HealthListener,
    add_health_listen_argument,
    check_health_listen,
)
from xenmca.rpc.identity import TokenBook, resolve_token_book
from xenmca.rpc.lifecycle import Setup, run_component, run_until_signal, standalone_main
from xenmca.rpc.metrics import (
    MetricsEndpoint,
    add_metrics_arguments,
    start_metrics_endpoint,
)
from xenmca.rpc.server import split_host_port
from xenmca.rpc.tls import (
    TlsMaterial,
    add_tls_arguments,
    load_tls_from_args,
    server_credentials,
)
from xenmca.rpc.usage import UsageError

log = logging.getLogger("xenmca.pcpu")

PROG = "xenmca serve pcpu"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_BASE_PORT = 50100
MAX_PCPU = 65535


def parse_pcpu_list(text: str) -> list[int]:
    """ "0-3,8" -> [0, 1, 2, 3, 8]; argparse.ArgumentTypeError naming the problem."""
    pcpus: set[int] = set()
    for part in text.split(","):
        first, sep, last = part.strip().partition("-")
        if not first.isdigit() or (sep and not last.isdigit()):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a pCPU list like 0-63 or 0-3,8 (bad part {part!r})"
            )
        low, high = int(first), int(last) if sep else int(first)
        if low > high:
            raise argparse.ArgumentTypeError(f"pCPU range {part!r} runs backwards")
        if high > MAX_PCPU:
            raise argparse.ArgumentTypeError(f"pCPU {high} is above {MAX_PCPU}")
        pcpus.update(range(low, high + 1))
    return sorted(pcpus)


def format_ranges(numbers: list[int]) -> str:
    """[0, 1, 2, 3, 8] -> "0-3,8"."""
    parts: list[str] = []
    ordered = sorted(numbers)
    start = previous = ordered[0]
    for number in [*ordered[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return ",".join(parts)


def _pcpu_number(text: str) -> int:
    if not text.isdigit() or int(text) > MAX_PCPU:
        raise argparse.ArgumentTypeError(f"pCPU must be a number 0..{MAX_PCPU}, got {text!r}")
    return int(text)


def _capacity(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_CAPACITY:
        raise argparse.ArgumentTypeError(f"capacity must be 1..{MAX_CAPACITY}, got {text!r}")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--pcpu", type=_pcpu_number, help="host this one pCPU")
    which.add_argument("--pcpus", type=parse_pcpu_list, help="host these pCPUs, e.g. 0-63 or 0-3,8")
    parser.add_argument(
        "--listen", metavar="HOST:PORT", help="address of the single --pcpu (port 0: any)"
    )
    parser.add_argument("--host", default=None, help=f"host to listen on (default {DEFAULT_HOST})")
    parser.add_argument(
        "--base-port",
        type=_port,
        default=None,
        help=f"pCPU i listens on base-port + i (default {DEFAULT_BASE_PORT}; 0: any free port)",
    )
    parser.add_argument("--state-dir", type=Path, help="keep records durably in DIR")
    parser.add_argument(
        "--capacity",
        type=_capacity,
        default=DEFAULT_CAPACITY,
        help=f"pending records per pCPU and type (default {DEFAULT_CAPACITY})",
    )
    parser.add_argument(
        "--sal",
        choices=[mode.value for mode in SalMode],
        default=SalMode.EXTENDED.value,
        help="SAL the firmware offers: plain (GET oldest, CLEAR current, GET_SIZE) or "
        "extended (plus clear by record id and counters; the default)",
    )
    parser.add_argument("--events", type=Path, metavar="FILE", help="append JSON-lines events")
    parser.add_argument("--token-file", metavar="FILE", help="identity tokens (enables checks)")
    parser.add_argument(
        "--ready-file", type=Path, metavar="FILE", help="write {pcpu: address} once serving"
    )
    add_health_listen_argument(parser)
    add_tls_arguments(parser)
    add_metrics_arguments(parser)


def _plan(args: argparse.Namespace) -> tuple[list[int], str, dict[int, int]]:
    """(pCPUs, host, port of each pCPU; 0 = any free port) from the arguments."""
    if args.pcpu is not None:
        if args.listen is not None:
            if args.host is not None or args.base_port is not None:
                raise UsageError("--listen cannot be combined with --host or --base-port")
            try:
                host, port = split_host_port(args.listen)
            except ValueError as exc:
                raise UsageError(f"--listen: {exc}") from None
            return [args.pcpu], host, {args.pcpu: port}
        pcpus = [args.pcpu]
    else:
        if args.listen is not None:
            raise UsageError("--listen is for one --pcpu; use --host and --base-port with --pcpus")
        pcpus = args.pcpus
    host = args.host or DEFAULT_HOST
    base = DEFAULT_BASE_PORT if args.base_port is None else args.base_port
    if base == 0:
        return pcpus, host, dict.fromkeys(pcpus, 0)
    if base + max(pcpus) > 65535:
        raise UsageError(f"--base-port {base} + pCPU {max(pcpus)} is above port 65535")
    return pcpus, host, {pcpu: base + pcpu for pcpu in pcpus}


def _port_span(host: PcpuHost) -> str:
    """ "127.0.0.1:50100-50163" for the started servers of host."""
    ports = [server.port for server in host.servers.values()]
    return join_host_port(host.host, 0).removesuffix("0") + format_ranges(ports)


async def _setup(
    stack: contextlib.AsyncExitStack,
    args: argparse.Namespace,
    plan: tuple[list[int], str, dict[int, int]],
    tls: TlsMaterial | None,
    token_book: TokenBook | None,
    clock: Clock | None = None,
) -> dict[str, str]:
    """Open the host's event log, metrics, health listener and pCPU servers into stack."""
    pcpus, host, ports = plan
    events = EventLog("pcpu", args.events, clock) if args.events else None
    if events is not None:
        stack.callback(events.close)
    pcpu_host = PcpuHost(
        pcpus,
        host=host,
        ports=ports,
        capacity=args.capacity,
        state_dir=args.state_dir,
        token_book=token_book,
        events=events,
        clock=clock,
        credentials=server_credentials(tls) if tls is not None else None,
        sal_mode=SalMode(args.sal),
    )
    if args.metrics_port is not None:
        stack.push_async_callback(_start_metrics(args, pcpu_host).aclose)
    probes: HealthListener | None = None
    if args.health_listen is not None:
        try:
            probes = HealthListener(args.health_listen)
        except (OSError, RuntimeError) as exc:
            raise HostStartError(str(exc)) from exc
        stack.push_async_callback(probes.stop, None)
        await probes.start()
    try:
        await pcpu_host.start()
    except StateDirError as exc:
        raise UsageError(str(exc)) from exc
    span = f"pCPUs {format_ranges(pcpus)} on {_port_span(pcpu_host)}"
    stack.push_async_callback(_stop_host, pcpu_host, span, events)
    if probes is not None:
        await probes.set_serving(True)
        stack.push_async_callback(probes.set_serving, False)
    durability = f"durable in {args.state_dir}" if args.state_dir else "in memory"
    log.info("serving %s (%s, capacity %d, %s SAL)", span, durability, args.capacity, args.sal)
    log.info("%s", _security_summary(tls, token_book is not None, probes))
    if events is not None:
        events.emit("host_started", pcpus=pcpu_host.addresses)
    return {str(k): v for k, v in sorted(pcpu_host.addresses.items())}


async def _stop_host(pcpu_host: PcpuHost, span: str, events: EventLog | None) -> None:
    await pcpu_host.stop()
    log.info("stopped %s", span)
    if events is not None:
        events.emit("host_stopped", pcpus=sorted(pcpu_host.pcpus))


def _start_metrics(args: argparse.Namespace, pcpu_host: PcpuHost) -> MetricsEndpoint:
    """The host's Prometheus endpoint (it reads the pCPUs' firmware at scrape time)."""
    from xenmca.pcpu.metrics import PcpuMetrics

    return start_metrics_endpoint(
        PcpuMetrics(pcpu_host).registry, args.metrics_host, args.metrics_port, log
    )


def _security_summary(tls: TlsMaterial | None, tokens: bool, probes: HealthListener | None) -> str:
    """One line on how callers are identified (never a token or key)."""
    parts = []
    if tls is not None:
        parts.append(f"mutual TLS as {tls.identity!r} (callers by client certificate)")
    if tokens:
        parts.append("bearer tokens checked")
    if not parts:
        parts.append("no TLS and no token file: every caller may call everything (insecure)")
    if probes is not None:
        parts.append(f"plaintext health-only listener on {probes.address}")
    return "security: " + "; ".join(parts)


def setup_from_args(args: argparse.Namespace, clock: Clock | None = None) -> Setup:
    """The host's part of run_component for these arguments (UsageError when they are bad).

    clock: what the host's firmware and events read the time from (default: the machine's).
    """
    plan = _plan(args)
    try:
        check_health_listen(args.health_listen)
        tls = load_tls_from_args(args)
        token_book = resolve_token_book(args.token_file)
    except ValueError as exc:  # TlsFileError, TokenFileError, a bad --health-listen
        raise UsageError(str(exc)) from exc
    return lambda stack: _setup(stack, args, plan, tls, token_book, clock)


def run(args: argparse.Namespace) -> int:
    setup = setup_from_args(args)
    return run_until_signal(lambda: run_component(PROG, setup, ready_file=args.ready_file))


def main(argv: list[str] | None = None) -> int:
    """Run without the top-level `xenmca` parser: python -m xenmca.pcpu.command ..."""
    return standalone_main(PROG, __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
