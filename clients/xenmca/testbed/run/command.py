"""`xenmca run SCENARIO` and `xenmca demo`: run a scenario, check it, write a results folder.

Exit status: 0 every check held, 1 a check failed, 2 a bad command line or
scenario file, 3 the run could not be made (a component that would not start)
or its validity is unknown. ``--json`` prints results.json on stdout instead of
the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from pathlib import Path

from xenmca import exit_status as status

DEFAULT_ROOT = Path("xenmca-results")


def add_run_arguments(parser: argparse.ArgumentParser, with_scenario: bool = True) -> None:
    if with_scenario:
        parser.add_argument("scenario", help="a scenario file, or the name of a built-in scenario")
    parser.add_argument(
        "--out",
        type=Path,
        help="results folder (default ./xenmca-results/<scenario>/<timestamp>/ and a latest link)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print results.json on stdout instead of the summary"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--tls",
        action="store_true",
        help="mutual TLS between every pair of components, with certificates made for the run",
    )
    parser.add_argument(
        "--target",
        type=Path,
        metavar="INVENTORY",
        help="run on a deployment that is already up, as its inventory (target.json, which "
        "`xenmca up --agents` writes) describes it: faults through its agents",
    )
    parser.add_argument(
        "--virtual-time",
        action="store_true",
        help="every component in this process on a virtual clock that jumps while the run is "
        "idle: minutes of polling in seconds (no kill, pause or partition faults, no TLS; "
        "latency is not judged)",
    )
    from xenmca.testbed.scenario.overrides import add_override_arguments

    add_override_arguments(parser)


add_arguments = add_run_arguments


def default_out_dir(name: str, root: Path = DEFAULT_ROOT) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = root / name / stamp
    suffix = 1
    while out.exists():
        suffix += 1
        out = root / name / f"{stamp}-{suffix}"
    return out


def _link_latest(out: Path) -> None:
    latest = out.parent / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(out.name)
    except OSError:
        pass  # a filesystem without symlinks: the timestamped folder is enough


def exit_status(valid: object) -> int:
    """0 valid, 1 not valid, 3 unknown (results.json's "valid": true, false or "unknown")."""
    if valid is True:
        return status.OK
    if valid is False:
        return status.FAILED
    return status.NOT_RUN


def run_scenario_command(args: argparse.Namespace, scenario_ref: str, command: str) -> int:
    from rich.console import Console

    from xenmca.testbed.infra.processes import ProcessStartError
    from xenmca.testbed.infra.target import InventoryError, TargetError, TargetTestbed
    from xenmca.testbed.report.summary import print_summary
    from xenmca.testbed.run.finish import finish_run
    from xenmca.testbed.run.runner import ScenarioRun
    from xenmca.testbed.scenario.errors import ScenarioError
    from xenmca.testbed.scenario.loader import builtin_names, load_builtin, load_scenario
    from xenmca.testbed.scenario.overrides import apply_override, override_from_args
    from xenmca.xen.policy import PolicyError

    try:
        path = Path(scenario_ref)
        if path.suffix in (".yaml", ".yml", ".json") or path.exists():
            scenario = load_scenario(path)
        elif scenario_ref in builtin_names():
            scenario = load_builtin(scenario_ref)
        else:
            raise ScenarioError(
                f"{scenario_ref}: no such file or built-in scenario "
                f"(built-in: {', '.join(builtin_names())})"
            )
        scenario = apply_override(scenario, override_from_args(args))
    except (ScenarioError, PolicyError) as exc:
        print(f"xenmca {command}: error: {exc}", file=sys.stderr)
        return status.USAGE
    out = args.out or default_out_dir(scenario.name)
    console = Console(stderr=True)
    if args.target is not None and (args.virtual_time or args.tls):
        print(
            f"xenmca {command}: error: --target runs on the deployment as it is: "
            "no --virtual-time or --tls",
            file=sys.stderr,
        )
        return status.USAGE
    if args.target is not None:
        try:  # the inventory, checked before anything starts
            TargetTestbed(args.target, out).check_scenario(scenario.pcpus)
        except InventoryError as exc:
            print(f"xenmca {command}: error: --target: {exc}", file=sys.stderr)
            return status.USAGE
    if args.virtual_time:
        from xenmca.testbed.run.in_process import NotInProcess, check_in_process, run_in_process

        try:
            if args.tls:
                raise NotInProcess("--tls needs real processes: run without --virtual-time")
            check_in_process(scenario)
        except NotInProcess as exc:
            print(f"xenmca {command}: error: --virtual-time: {exc}", file=sys.stderr)
            return status.USAGE
        execute = run_in_process(scenario, out)
    else:
        execute = ScenarioRun(
            scenario,
            out,
            console=console,
            show_progress=not args.no_progress,
            tls=args.tls,
            target=args.target,
        ).execute()
    try:
        data = asyncio.run(execute)
    except ProcessStartError as exc:
        print(f"xenmca {command}: error: testbed did not start: {exc}", file=sys.stderr)
        return status.NOT_RUN
    except TargetError as exc:
        print(f"xenmca {command}: error: --target: {exc}", file=sys.stderr)
        return status.NOT_RUN
    except KeyboardInterrupt:
        print(f"xenmca {command}: interrupted; testbed stopped", file=sys.stderr)
        return status.INTERRUPTED
    results = finish_run(data)
    if args.out is None:
        _link_latest(out)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print_summary(results, Console())
    return exit_status(results["valid"])


def run(args: argparse.Namespace) -> int:
    return run_scenario_command(args, args.scenario, "run")
