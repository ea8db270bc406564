"""`xenmca agent`: the per-host supervisor of one component, serving AgentService.

    xenmca agent --listen 0.0.0.0:50070 --token-file tokens.json -- serve pcpu --pcpus 0-7
    xenmca agent --listen 127.0.0.1:0 --ready-file agent.json -- xenmca dom0 --xen ... --db d.db

The child (everything after ``--``) starts with the agent (unless ``--no-start``)
and is stopped (SIGTERM, SIGKILL after ``--stop-grace``) when the agent stops; a
xenmca child also dies with the agent if the agent is killed (XENMCA_DIE_WITH_PARENT).
``--ready-file`` is written (JSON {"address": "host:port", "child_pid": pid}) once
the agent serves. ``--events FILE`` is the agent's own event log (child started,
exited, paused, network cut, ...); ``--child-events FILE`` names the child's events
file for WatchEvents when the child's command line has no ``--events``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from xenmca.agent import service
from xenmca.agent.child import DEFAULT_GRACE, MAX_GRACE, Child, ChildSpec
from xenmca.agent.child_argv import child_spec
from xenmca.agent.network import DEFAULT_DEVICE, NetworkControl
from xenmca.rpc.events import EventLog
from xenmca.rpc.identity import TokenBook, resolve_token_book
from xenmca.rpc.lifecycle import Setup, StartError, run_component, run_until_signal, standalone_main
from xenmca.rpc.server import ServiceBinding, build_server, split_host_port
from xenmca.rpc.tls import TlsMaterial, add_tls_arguments, load_tls_from_args, server_credentials
from xenmca.rpc.usage import UsageError

log = logging.getLogger("xenmca.agent")

PROG = "xenmca agent"
DEFAULT_LISTEN = "127.0.0.1:50070"


def _grace(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_GRACE:
        raise argparse.ArgumentTypeError(f"must be seconds above 0 and at most {MAX_GRACE:g}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT to serve on (default {DEFAULT_LISTEN})"
    )
    parser.add_argument("--token-file", metavar="FILE", help="identity tokens (enables checks)")
    parser.add_argument("--events", type=Path, metavar="FILE", help="the agent's own events")
    parser.add_argument(
        "--child-events",
        type=Path,
        metavar="FILE",
        help="the child's events file for WatchEvents (default: the child's --events)",
    )
    parser.add_argument(
        "--ready-file", type=Path, metavar="FILE", help="write {address, child_pid} once serving"
    )
    parser.add_argument("--no-start", action="store_true", help="do not start the child at once")
    parser.add_argument(
        "--stop-grace",
        type=_grace,
        default=DEFAULT_GRACE,
        metavar="S",
        help=f"seconds from SIGTERM to SIGKILL when stopping the child (default {DEFAULT_GRACE:g})",
    )
    parser.add_argument(
        "--net-device",
        default=DEFAULT_DEVICE,
        metavar="DEV",
        help=f"the network device CutNetwork takes down (default {DEFAULT_DEVICE})",
    )
    add_tls_arguments(parser)
    parser.add_argument(
        "child",
        nargs="*",
        metavar="-- COMMAND ARGS",
        help="the child's command line, e.g. -- serve pcpu --pcpus 0-7 (or -- xenmca serve ...)",
    )


async def _setup(
    stack: contextlib.AsyncExitStack,
    args: argparse.Namespace,
    spec: ChildSpec,
    tls: TlsMaterial | None,
    book: TokenBook | None,
) -> dict[str, object]:
    events = EventLog("agent", args.events) if args.events else None
    if events is not None:
        stack.callback(events.close)
    child = Child(spec, events, args.stop_grace)
    network = NetworkControl(args.net_device, events)
    servicer = service.AgentServicer(child, network, book)
    try:
        built = build_server(
            args.listen,
            [
                ServiceBinding(
                    service.SERVICE_NAME, lambda server: service.add_to_server(servicer, server)
                )
            ],
            credentials=server_credentials(tls) if tls is not None else None,
            tokens=book,
            events=events,
        )
    except (OSError, RuntimeError) as exc:
        raise StartError(f"cannot listen on {args.listen}: {exc}") from exc
    await built.start()
    host, _ = split_host_port(args.listen)
    address = f"{host}:{built.port}"
    stack.push_async_callback(built.stop, 1.0)
    stack.push_async_callback(network.close)
    stack.callback(servicer.closing.set)
    # Last in, first out: on stop the child goes first, then the link, then the server.
    stack.push_async_callback(child.close)
    if not args.no_start:
        try:
            await child.start()
        except Exception as exc:
            raise StartError(str(exc)) from exc
    log.info("agent serving on %s; child %s (pid %s)", address, child.state.value, child.pid)
    if events is not None:
        events.emit("agent_started", address=address, argv=list(spec.argv))
    return {"address": address, "child_pid": child.pid}


def setup_from_args(args: argparse.Namespace) -> Setup:
    """The agent's part of run_component for these arguments (UsageError when they are bad)."""
    words = list(args.child)
    if words[:1] == ["--"]:
        words = words[1:]
    spec = child_spec(words, args.child_events)
    try:
        split_host_port(args.listen)
        tls = load_tls_from_args(args)
        book = resolve_token_book(args.token_file)
    except ValueError as exc:  # a bad --listen, TlsFileError, TokenFileError
        raise UsageError(str(exc)) from exc
    return lambda stack: _setup(stack, args, spec, tls, book)


def run(args: argparse.Namespace) -> int:
    setup = setup_from_args(args)
    # It starts (and restarts) its component while its own gRPC server runs.
    return run_until_signal(
        lambda: run_component(PROG, setup, ready_file=args.ready_file), spawns_processes=True
    )


def main(argv: list[str] | None = None) -> int:
    """Run without the top-level `xenmca` parser: python -m xenmca.agent.command ..."""
    return standalone_main(PROG, __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
