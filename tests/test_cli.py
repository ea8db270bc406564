"""The top-level `xenmca` parser: every command listed, only the one run imported."""

from __future__ import annotations

import json
import subprocess
import sys

from xenmca.cli import COMMANDS, build_parser


def _imported_after(argv: list[str]) -> set[str]:
    code = (
        "import sys, json; from xenmca.cli import build_parser; "
        f"build_parser({argv!r}); "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('xenmca.'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(done.stdout))


def test_a_command_imports_only_its_own_module() -> None:
    modules = _imported_after(["serve", "pcpu", "--pcpus", "0-3"])
    assert "xenmca.pcpu.command" in modules
    others = {module for _, module, _ in COMMANDS} - {"xenmca.pcpu.command"}
    assert not modules & others
    assert not any(m.startswith("xenmca.testbed.") for m in modules)


def test_without_argv_every_command_has_its_arguments() -> None:
    parser = build_parser()
    args = parser.parse_args(["serve", "pcpu", "--pcpus", "0-3"])
    assert args._module == "xenmca.pcpu.command"
    args = parser.parse_args(["bench", "--quick", "--only", "floors"])
    assert args.quick and args.only == ["floors"]


def test_the_command_line_is_parsed_with_the_named_module_only() -> None:
    args = build_parser(["-v", "log", "summary", "--db", "x.sqlite"]).parse_args(
        ["-v", "log", "summary", "--db", "x.sqlite"]
    )
    assert args.verbose and args._module == "xenmca.dom0.log_command"


def test_help_lists_every_command_and_a_bad_command_is_one_line_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "xenmca.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    for words, _, _ in COMMANDS:
        assert words[0] in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "xenmca.cli", "serve", "nothing"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "invalid choice: 'nothing'" in bad.stderr
