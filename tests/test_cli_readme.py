"""The README's Commands section checked against the real parser.

Every command of `xenmca.cli.COMMANDS` and every flag its parser accepts (subcommands,
hidden test-only flags and deprecated spellings included) must be named in the section;
each command's row of the table must name only flags that command takes; the exit
status table must list every status of `xenmca.exit_status`.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from xenmca import exit_status
from xenmca.cli import COMMANDS, build_parser

README = Path(__file__).resolve().parents[1] / "README.md"
FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*[\w])")


def commands_section() -> str:
    """From the line "## Commands" up to the next "## " heading."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Commands\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def command_parsers() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Each command of COMMANDS (as its words) and its parser, from the full parser."""
    parsers: dict[tuple[str, ...], argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        parsers[words] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*words, name))

    walk(build_parser(), ())
    return parsers


def flags_of(parser: argparse.ArgumentParser, subcommands: bool = True) -> set[str]:
    """Every option string parser accepts (its subcommands' too), but -h/--help."""
    found: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            if subcommands:
                for sub in action.choices.values():
                    found |= flags_of(sub)
        else:
            found.update(action.option_strings)
    return found - {"-h", "--help"}


def named(flag: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


def test_every_command_is_in_the_commands_section() -> None:
    section = commands_section()
    missing = [
        " ".join(words)
        for words, _, _ in COMMANDS
        if not re.search(rf"`xenmca {re.escape(' '.join(words))}(?![\w-])", section)
    ]
    assert not missing, f"commands not in README's Commands section: {missing}"


@pytest.mark.parametrize(
    "words", [(), *(words for words, _, _ in COMMANDS)], ids=lambda w: " ".join(w) or "xenmca"
)
def test_every_flag_of_a_command_is_in_the_commands_section(words: tuple[str, ...]) -> None:
    # () is `xenmca` itself: its own flags (-v, --version); the commands' are theirs.
    flags = flags_of(command_parsers()[words], subcommands=bool(words))
    section = commands_section()
    missing = sorted(flag for flag in flags if not named(flag, section))
    assert not missing, f"`xenmca {' '.join(words)}` flags not in README's Commands: {missing}"


def table_rows() -> dict[tuple[str, ...], str]:
    """The command table's rows, by the command they start with."""
    rows: dict[tuple[str, ...], str] = {}
    known = sorted((words for words, _, _ in COMMANDS), key=len, reverse=True)
    for line in commands_section().splitlines():
        if not line.startswith("| `xenmca "):
            continue
        for words in known:
            if re.match(rf"\| `xenmca {re.escape(' '.join(words))}(?![\w-])", line):
                assert words not in rows, f"two rows for xenmca {' '.join(words)}"
                rows[words] = line
                break
        else:
            raise AssertionError(f"a row for no known command: {line[:80]}")
    return rows


def test_each_row_names_only_flags_its_command_takes() -> None:
    parsers = command_parsers()
    rows = table_rows()
    assert set(rows) == {words for words, _, _ in COMMANDS}
    unknown = {
        " ".join(words): sorted(set(FLAG.findall(row)) - flags_of(parsers[words]))
        for words, row in rows.items()
    }
    wrong = {command: flags for command, flags in unknown.items() if flags}
    assert not wrong, f"rows naming flags their command does not take: {wrong}"


def test_the_exit_status_table_lists_every_status() -> None:
    section = commands_section()
    table = section[section.index("Exit status") :]
    statuses = {
        value
        for name, value in vars(exit_status).items()
        if name.isupper() and isinstance(value, int)
    }
    assert statuses == {0, 1, 2, 3, 130, 141}
    for value in statuses:
        assert re.search(rf"^\| {value} \| ", table, re.MULTILINE), value
