"""`xenmca bench`: floors and the real flow measured in the same run, as a table and JSON.

    xenmca bench                              # the full run (about 2-3 minutes)
    xenmca bench --quick --json-out out.json  # the CI run (under a minute), figures only
    xenmca bench --only storm,scale --json    # the results as JSON on stdout

Exit status: 0 when every selected section ran (whether or not its targets
are met: these are benchmarks, not timed tests), 2 for a bad command line, 3
when a section could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from xenmca import exit_status
from xenmca.cli_common import add_json_arguments, fail, write_json_out
from xenmca.testbed.bench.report import Row, markdown, render
from xenmca.testbed.bench.suite import SECTIONS, UnknownSection, resolve, run_bench


def _section_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    try:
        resolve(names)
    except UnknownSection as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not names:
        raise argparse.ArgumentTypeError(f"name one or more of {', '.join(SECTIONS)}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_json_arguments(parser, "the results")
    parser.add_argument(
        "--markdown",
        type=Path,
        metavar="FILE",
        help="also write the table as Markdown (as in the README's measured figures)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes for CI (about 1 minute)"
    )
    parser.add_argument(
        "--only",
        type=_section_list,
        metavar="NAME,...",
        help=f"run only these sections (and what they need): {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="keep the testbeds' files (logs, events, dom0 logs) here: a new or empty "
        "directory (default: a temporary directory, removed afterwards)",
    )


async def _run(args: argparse.Namespace, workdir: Path, console: Console) -> dict[str, Any]:
    sections = resolve(args.only)
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    task = bar.add_task("bench", total=len(sections))

    def progress(name: str, what: str) -> None:
        # One line per step in any case (CI logs keep them); the bar shows what runs now.
        console.print(f"[bold]{name}[/]: {what}")
        if what == "running":
            bar.update(task, description=f"bench: {name}")
        else:
            bar.advance(task)

    with bar:
        return await run_bench(workdir, quick=args.quick, only=args.only, progress=progress)


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    if args.workdir is not None:
        if args.workdir.is_dir() and any(args.workdir.iterdir()):
            # A testbed reopens what it finds (dom0's durable log above all): the rows of
            # an earlier run would be counted as this run's records.
            fail("bench", f"--workdir {args.workdir} is not empty; give a new or empty directory")
        if args.workdir.exists() and not args.workdir.is_dir():
            fail("bench", f"--workdir {args.workdir} is not a directory")
        args.workdir.mkdir(parents=True, exist_ok=True)
        workdir, scratch = args.workdir, None
    else:
        scratch = Path(tempfile.mkdtemp(prefix="xenmca-bench-"))
        workdir = scratch
    try:
        result = asyncio.run(_run(args, workdir, console))
    except KeyboardInterrupt:
        return exit_status.INTERRUPTED
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    rows = [Row(**row) for row in result["rows"]]
    text = json.dumps(result, indent=2) + "\n"
    if args.json:
        sys.stdout.write(text)
    else:
        # Piped (CI logs): wide enough for one line per row rather than rich's 80 columns.
        render(rows, result["machine"], Console(width=None if sys.stdout.isatty() else 150))
    if args.json_out is not None:
        write_json_out(args.json_out, text)
        console.print(f"results written to {args.json_out}")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(rows, result["machine"]))
        console.print(f"table written to {args.markdown}")
    failed = [name for name, section in result["sections"].items() if "error" in section]
    if failed:
        console.print(f"[red]sections that could not run: {', '.join(failed)}[/]")
        return exit_status.NOT_RUN
    console.print(f"bench finished in {result['duration_s']} s")
    return exit_status.OK


def main(argv: list[str] | None = None) -> int:
    """Run without the top-level `xenmca` parser: python -m xenmca.testbed.bench.command ..."""
    parser = argparse.ArgumentParser(prog="xenmca bench", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
