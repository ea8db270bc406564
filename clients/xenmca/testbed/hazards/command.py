"""`xenmca hazards`: every shipped hazard under the shipped policy (caught?) and xenmca's (held?).

Exit status: 0 when every shipped run is caught by its checker and every
default run holds every check; 1 when one is missed or broken; 2 for a bad
command line; 3 when a testbed would not start or a run's verdict is unknown.
``--json`` prints the matrix (hazards.json) on stdout instead of the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from xenmca import exit_status
from xenmca.rpc.usage import UsageError
from xenmca.testbed.hazards.matrix import HAZARDS, VARIANTS, Cell, Hazard, judge


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from xenmca.cli_common import add_json_arguments

    add_json_arguments(parser, "the matrix")
    parser.add_argument(
        "--out",
        type=Path,
        help="results folder (default ./xenmca-results/hazards/<timestamp>/): the matrix, "
        "and each run's results folder as <hazard>/<variant>/",
    )
    parser.add_argument(
        "--only",
        metavar="NAME,...",
        help="some hazards (e.g. starvation,failed-get; the hazard- prefix is optional)",
    )
    parser.add_argument(
        "--variants",
        metavar="NAME,...",
        default=",".join(VARIANTS),
        help=f"which runs of each hazard (default {','.join(VARIANTS)})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--virtual-time",
        action="store_true",
        help="run each cell in this process on virtual time where it can (seconds, not "
        "minutes); a cell with kill, pause or partition faults still runs as real processes",
    )


def _selected(args: argparse.Namespace) -> tuple[list[Hazard], list[str]]:
    """The hazards and variants asked for; SystemExit(2) with one line otherwise."""
    hazards = list(HAZARDS)
    if args.only:
        known = {h.name: h for h in HAZARDS}
        hazards = []
        for word in (w.strip() for w in args.only.split(",") if w.strip()):
            name = word if word.startswith("hazard-") else f"hazard-{word}"
            if name not in known:
                names = ", ".join(h.name.removeprefix("hazard-") for h in HAZARDS)
                _usage(f"--only: unknown hazard {word!r} (known: {names})")
            hazards.append(known[name])
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        _usage(
            f"--variants: unknown variant {unknown[0] if unknown else '(none)'!r} "
            f"(known: {', '.join(VARIANTS)})"
        )
    if not hazards:
        _usage("--only: no hazard named")
    return hazards, variants


def _usage(message: str) -> NoReturn:
    raise UsageError(message)


async def run_cell(item: Hazard, variant: str, out_dir: Path, virtual: bool = False) -> Cell:
    """Run one hazard under one variant into out_dir and judge it (virtual: on virtual time
    in this process when the scenario allows, see xenmca.testbed.run.in_process)."""
    from rich.console import Console

    from xenmca.testbed.run import in_process
    from xenmca.testbed.run.finish import finish_run
    from xenmca.testbed.run.runner import ScenarioRun
    from xenmca.testbed.scenario.loader import load_builtin
    from xenmca.testbed.scenario.overrides import apply_override

    scenario = apply_override(load_builtin(item.name), item.override(variant))
    label = scenario.policy.xen
    if scenario.policy.dom0 != "xenmca":
        label += f" + dom0 {scenario.policy.dom0}"
    label += f" ({scenario.sal} SAL)"
    started = time.monotonic()
    if virtual and in_process.fits(scenario):
        data = await in_process.run_in_process(scenario, out_dir)
    else:
        run = ScenarioRun(scenario, out_dir, console=Console(stderr=True), show_progress=False)
        data = await run.execute()
    results = finish_run(data)
    outcome, failing, first = judge(item, variant, results)
    detail = ""
    for check in results.get("checks") or []:
        if check.get("name") == (item.check if outcome in ("caught", "missed") else None) or (
            outcome == "broken" and check.get("status") != "pass"
        ):
            detail = str(check.get("detail", ""))
            break
    return Cell(
        hazard=item.name,
        variant=variant,
        policy=label,
        outcome=outcome,
        failing=failing,
        first_record=first,
        valid=results.get("valid"),
        seconds=time.monotonic() - started,
        results_dir=str(out_dir),
        detail=detail,
        clock=data.clock,
    )


async def run_matrix(
    hazards: list[Hazard],
    variants: list[str],
    out: Path,
    show_progress: bool = True,
    virtual: bool = False,
) -> list[Cell]:
    from xenmca.cli_common import cells_progress
    from xenmca.testbed.infra.processes import ProcessStartError

    cells: list[Cell] = []
    progress = cells_progress(show_progress)
    with progress:
        task = progress.add_task("hazards", total=len(hazards) * len(variants))
        for item in hazards:
            for variant in variants:
                progress.update(task, description=f"{item.name} / {variant}")
                cell_dir = out / item.name / variant
                started = time.monotonic()
                try:
                    cell = await run_cell(item, variant, cell_dir, virtual)
                except ProcessStartError as exc:
                    cell = Cell(
                        hazard=item.name,
                        variant=variant,
                        policy="",
                        outcome="error",
                        failing=[],
                        first_record=None,
                        valid="unknown",
                        seconds=time.monotonic() - started,
                        results_dir=str(cell_dir),
                        detail=f"testbed did not start: {exc}",
                    )
                cells.append(cell)
                progress.advance(task)
    return cells


def matrix_json(cells: list[Cell], seconds: float) -> dict[str, Any]:
    by_name = {h.name: h for h in HAZARDS}
    hazards = []
    for name in dict.fromkeys(c.hazard for c in cells):
        item = by_name[name]
        hazards.append(
            {
                "name": name,
                "title": item.title,
                "shipped_policy": item.shipped_label,
                "check": item.check,
                "source": item.source,
                "prevention": item.prevention,
                "runs": [c.as_dict() for c in cells if c.hazard == name],
            }
        )
    return {
        "ok": all(c.expected for c in cells),
        "seconds": round(seconds, 1),
        "hazards": hazards,
    }


def print_matrix(cells: list[Cell], seconds: float) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    variants = list(dict.fromkeys(c.variant for c in cells))
    virtual = sum(c.clock == "virtual" for c in cells)
    on = f"; {virtual} on virtual time" if virtual else ""
    table = Table(
        title=f"hazards: {sum(c.expected for c in cells)} of {len(cells)} as expected "
        f"({seconds:.0f} s{on})",
        title_justify="left",
    )
    table.add_column("hazard")
    for variant in variants:
        table.add_column(variant)
    style = {"caught": "green", "held": "green", "missed": "bold red", "broken": "bold red"}
    for name in dict.fromkeys(c.hazard for c in cells):
        row = [name.removeprefix("hazard-")]
        for variant in variants:
            cell = next((c for c in cells if c.hazard == name and c.variant == variant), None)
            if cell is None:
                row.append("-")
                continue
            text = cell.outcome
            if cell.outcome == "caught":
                text += f": {_check_of(name)}"
                if cell.first_record:
                    text += f" ({cell.first_record})"
            elif cell.outcome == "broken":
                text += ": " + ", ".join(cell.failing)
            row.append(f"[{style.get(cell.outcome, 'yellow')}]{escape(text)}[/]")
        table.add_row(*row)
    Console().print(table)


def _check_of(name: str) -> str:
    return next(h.check for h in HAZARDS if h.name == name)


def run(args: argparse.Namespace) -> int:
    from xenmca.cli_common import write_json_out
    from xenmca.testbed.run.command import default_out_dir

    hazards, variants = _selected(args)
    out = args.out or default_out_dir("hazards")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        cells = asyncio.run(
            run_matrix(hazards, variants, out, not args.no_progress, args.virtual_time)
        )
    except KeyboardInterrupt:
        print("xenmca hazards: interrupted; testbed stopped", file=sys.stderr)
        return exit_status.INTERRUPTED
    seconds = time.monotonic() - started
    matrix = matrix_json(cells, seconds)
    text = json.dumps(matrix, indent=2, default=str) + "\n"
    (out / "hazards.json").write_text(text, encoding="utf-8")
    write_json_out(args.json_out, text)
    if args.json:
        sys.stdout.write(text)
    else:
        print_matrix(cells, seconds)
    print(
        f"results: {out}  (hazards.json, and <hazard>/<variant>/ per run)",
        file=sys.stderr if args.json else sys.stdout,
    )
    return matrix_status(cells)


def matrix_status(cells: list[Cell]) -> int:
    """0 every run as expected, 1 one missed or broken, 3 one that did not run or whose
    verdict is unknown (it takes precedence: such a matrix says nothing for sure)."""
    unknown = [
        c
        for c in cells
        if c.outcome == "error" or (not c.expected and c.valid not in (True, False))
    ]
    if unknown:
        return exit_status.NOT_RUN
    return exit_status.OK if all(c.expected for c in cells) else exit_status.FAILED
