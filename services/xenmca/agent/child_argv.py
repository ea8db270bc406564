"""The child's command line as the agent runs it, and what the agent reads from it.

``xenmca agent ... -- COMMAND ARGS``: COMMAND ARGS run as given (``xenmca serve
pcpu ...`` finds `xenmca` on PATH), except a bare xenmca command (``serve pcpu
...``, ``dom0 ...``), which runs as ``python -m xenmca.cli serve pcpu ...`` with
the agent's own interpreter, so child and agent are the same xenmca.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from xenmca.agent.child import ChildSpec
from xenmca.rpc.usage import UsageError


def xenmca_command_words() -> set[str]:
    """The first word of every `xenmca` command (serve, dom0, run, ...)."""
    from xenmca.cli import COMMANDS

    return {words[0] for words, _, _ in COMMANDS}


def resolve_argv(words: Sequence[str]) -> tuple[str, ...]:
    """The command line to execute for the words after ``--``; UsageError when there are none."""
    if not words:
        raise UsageError(
            "give the child's command line after --, e.g. -- xenmca serve pcpu --pcpus 0-7"
        )
    if words[0] in xenmca_command_words():
        return (sys.executable, "-m", "xenmca.cli", *words)
    return tuple(words)


def option_value(argv: Sequence[str], flag: str) -> str | None:
    """The value of ``flag VALUE`` or ``flag=VALUE`` in argv (the last one given), else None."""
    found: str | None = None
    for index, word in enumerate(argv):
        if word == flag and index + 1 < len(argv):
            found = argv[index + 1]
        elif word.startswith(flag + "="):
            found = word[len(flag) + 1 :]
    return found


def child_spec(words: Sequence[str], events_file: Path | None = None) -> ChildSpec:
    """The child to supervise: its command line, its --state-dir and its events file.

    events_file (the agent's ``--child-events``) wins over the child's ``--events``;
    relative paths are the child's, which runs in the agent's working directory.
    """
    argv = resolve_argv(words)
    if events_file is None:
        named = option_value(argv, "--events")
        events_file = Path(named) if named else None
    return ChildSpec(
        argv=argv,
        state_dir=option_value(argv, "--state-dir"),
        events_file=events_file.absolute() if events_file is not None else None,
    )
