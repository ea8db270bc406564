"""The `xenmca` command: parses arguments and hands each subcommand to the module that owns it.

Each command module exposes `add_arguments(parser)` and `run(args) -> int`;
they are imported only when their command runs, so `xenmca --help` is quick.
Every command shares the exit statuses of `xenmca.exit_status`: a command
raises `xenmca.rpc.usage.UsageError` for a bad command line or input, printed
here as one line and exit status 2; a reader that goes away (`xenmca status
--json | head`) ends the command quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from xenmca import exit_status
from xenmca.rpc.usage import UsageError

# (command words, module, one-line help)
COMMANDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("serve", "pcpu"), "xenmca.pcpu.command", "host simulated pCPU firmware (SalService)"),
    (("serve", "xen"), "xenmca.xen.command", "run the Xen coordinator (HypervisorService)"),
    (("dom0",), "xenmca.dom0.command", "run dom0's error logger against a coordinator"),
    (
        ("agent",),
        "xenmca.agent.command",
        "supervise this host's component and serve AgentService (operator only)",
    ),
    (("demo",), "xenmca.testbed.run.demo_command", "run the built-in demo scenario and check it"),
    (("run",), "xenmca.testbed.run.command", "run a scenario file and check it"),
    (
        ("hazards",),
        "xenmca.testbed.hazards.command",
        "run each shipped Xen/ia64 hazard under the shipped and the default policy",
    ),
    (
        ("compare-policies",),
        "xenmca.testbed.compare.command",
        "run the same storm workloads under each storm rule (ia64, x86-cmci, leaky-bucket)",
    ),
    (("up",), "xenmca.testbed.run.up_command", "a local testbed that stays up until Ctrl-C"),
    (("inject",), "xenmca.ops.inject", "make a pCPU raise errors"),
    (("status",), "xenmca.ops.status", "show a coordinator's or pCPU's state"),
    (("log",), "xenmca.dom0.log_command", "read dom0's durable error log"),
    (("decode",), "xenmca.ops.decode", "print raw SAL records as `log show` does, or as JSON"),
    (("replay",), "xenmca.ops.replay", "replay a dump of records onto a testbed, time-scaled"),
    (("fault",), "xenmca.ops.fault", "add, list or clear per-RPC fault rules"),
    (("certs", "generate"), "xenmca.ops.certs", "make a test CA and TLS certificates"),
    (
        ("bench",),
        "xenmca.testbed.bench.command",
        "measure throughput, latency, storm isolation and scale",
    ),
    (("completion",), "xenmca.completion_command", "print a bash or zsh completion script"),
)


class OneLineParser(argparse.ArgumentParser):
    """Bad command lines get one line naming the problem, and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class VersionAction(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("xenmca")
        except PackageNotFoundError:  # run from a source tree that was never installed
            found = "unknown (not installed)"
        print(f"xenmca {found}")
        parser.exit(0)


def _command_words(argv: Sequence[str]) -> list[str]:
    """The leading words of argv that are not options (the command, then its arguments)."""
    words: list[str] = []
    for word in argv:
        if word.startswith("-"):
            if words:
                break
            continue
        words.append(word)
    return words


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with argv, only the module of the command argv names is imported.

    Every process the testbed starts is a `xenmca` command: importing all the
    others' modules (rich, YAML, the testbed) would cost each pCPU host about
    6 MiB and a tenth of a second for nothing. Without argv, every command's
    arguments are added (for tests and documentation).
    """
    words = None if argv is None else _command_words(argv)
    parser = OneLineParser(prog="xenmca", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action=VersionAction, help="print the version and exit")
    top = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    groups: dict[str, argparse._SubParsersAction[OneLineParser]] = {}
    for command_words, module, help_text in COMMANDS:
        subparsers = top
        for depth, word in enumerate(command_words[:-1]):
            key = " ".join(command_words[: depth + 1])
            if key not in groups:
                group_parser = subparsers.add_parser(word, help=f"{word} a component")
                groups[key] = group_parser.add_subparsers(
                    dest=f"{word}_what", required=True, parser_class=OneLineParser
                )
            subparsers = groups[key]
        command = subparsers.add_parser(command_words[-1], help=help_text, description=help_text)
        command.set_defaults(_module=module, _prog=command.prog)
        if words is None or words[: len(command_words)] == list(command_words):
            importlib.import_module(module).add_arguments(command)
    return parser


def _run(argv: Sequence[str]) -> int:
    args = build_parser(argv).parse_args(argv)
    from xenmca.rpc.lifecycle import setup_logging

    setup_logging(args.verbose)
    try:
        return int(importlib.import_module(args._module).run(args))
    except BrokenPipeError:
        raise  # handled in main
    except UsageError as exc:
        print(f"{args._prog}: error: {exc}", file=sys.stderr)
        return exit_status.USAGE
    except Exception:
        # A bug or an environment nothing foresaw: the traceback, and "could not run"
        # rather than Python's 1, which would read as "a check failed".
        traceback.print_exc()
        return exit_status.NOT_RUN


def main(argv: Sequence[str] | None = None) -> int:
    from xenmca.rpc.lifecycle import die_with_parent_if_asked

    die_with_parent_if_asked()
    if argv is None:
        argv = sys.argv[1:]
    try:
        try:
            return _run(argv)
        finally:
            # Flushed here, not at exit, so that a closed pipe is caught below (help
            # text and SystemExit included).
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away: no traceback, and nothing more written to the pipe
        # (Python would try again to flush stdout at exit).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return exit_status.BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
