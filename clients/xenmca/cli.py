"""The `xenmca` command: parses arguments and hands each subcommand to the module that owns it.

Each command module exposes `add_arguments(parser)` and `run(args) -> int`;
they are imported only when their command runs, so `xenmca --help` is quick.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

# (command words, module, one-line help)
COMMANDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("serve", "pcpu"), "xenmca.pcpu.command", "host simulated pCPU firmware (SalService)"),
    (("serve", "xen"), "xenmca.xen.command", "run the Xen coordinator (HypervisorService)"),
    (("dom0",), "xenmca.dom0.command", "run dom0's error logger against a coordinator"),
    (("demo",), "xenmca.testbed.demo_command", "run the built-in demo scenario and check it"),
    (("run",), "xenmca.testbed.run_command", "run a scenario file and check it"),
    (
        ("hazards",),
        "xenmca.testbed.hazards_command",
        "run each shipped Xen/ia64 hazard under the shipped and the default policy",
    ),
    (
        ("compare-policies",),
        "xenmca.testbed.compare_command",
        "run the same storm workloads under each storm rule (ia64, x86-cmci, leaky-bucket)",
    ),
    (("up",), "xenmca.testbed.up_command", "a local testbed that stays up until Ctrl-C"),
    (("inject",), "xenmca.testbed.inject_command", "make a pCPU raise errors"),
    (("status",), "xenmca.testbed.status_command", "show a coordinator's or pCPU's state"),
    (("log",), "xenmca.dom0.log_command", "read dom0's durable error log"),
    (("fault",), "xenmca.testbed.fault_command", "add, list or clear per-RPC fault rules"),
    (("certs", "generate"), "xenmca.testbed.certs_command", "make a test CA and TLS certificates"),
    (
        ("bench",),
        "xenmca.testbed.bench_command",
        "measure throughput, latency, storm isolation and scale",
    ),
)


class OneLineParser(argparse.ArgumentParser):
    """Bad command lines get one line naming the problem, and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


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
        command.set_defaults(_module=module)
        if words is None or words[: len(command_words)] == list(command_words):
            importlib.import_module(module).add_arguments(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from xenmca.rpc.lifecycle import die_with_parent_if_asked

    die_with_parent_if_asked()
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser(argv).parse_args(argv)
    from xenmca.rpc.lifecycle import setup_logging

    setup_logging(args.verbose)
    return int(importlib.import_module(args._module).run(args))


if __name__ == "__main__":
    sys.exit(main())
