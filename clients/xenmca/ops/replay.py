"""`xenmca replay DUMP`: store a dump's records on a running testbed's pCPUs, spaced as
they were created, time-scaled.

DUMP is a JSON-lines dump (`xenmca log export --format raw`, or "-" for standard
input) or a directory of SAL record files (`--format sal`); xenmca.ops.dumps
describes both. Every record is checked first (strict decoding, a known pCPU for
each), so a bad dump sends nothing. Each record then goes to its pCPU as one
InjectError carrying its exact bytes (raw_record); that pCPU's firmware writes its
own record id into the header. Record k is sent (t_k - t_0) / speed seconds after
the first (t: created_ns, or the header's timestamp), gaps capped by --max-gap;
records of one pCPU are sent in dump order, one at a time, so a fresh pCPU numbers
them as the original did when the dump holds every record it made. The sending is
the scenario workload's (xenmca.testbed.run.workload): one task per pCPU, UNAVAILABLE
retried, failures counted.

Exit status: 0 every record stored (or counted as overflow by its firmware), 1 some
could not be injected, 2 a bad command line or dump.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xenmca.cli_common import add_tls_argument, add_token_argument, client_auth, fail
from xenmca.rpc.flags import PcpuAddress, add_deprecated_flag, pcpu_address_arg

if TYPE_CHECKING:
    from xenmca.ops.dumps import DumpRecord
    from xenmca.testbed.run.workload import WorkloadSummary
    from xenmca.testbed.run.workload_plan import PlannedInjection

PROG = "replay"
ORDER_STEP_S = 1e-6
"""Records of one pCPU planned for the same instant are put this far apart: the workload
sorts its plan by time, then type and severity, which would reorder them."""


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, got {text}")
    return value


def _target_arg(text: str) -> PcpuAddress:
    if text.isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r} is a pCPU number, not an address: --pcpu takes N=HOST:PORT or HOST:PORT "
            "(the pCPU of directory files whose names do not say is --files-pcpu N)"
        )
    return pcpu_address_arg(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dump",
        metavar="DUMP",
        help="a JSON-lines dump (log export --format raw; - for stdin) or a directory of "
        "SAL record files (log export --format sal)",
    )
    parser.add_argument(
        "--pcpu",
        action="append",
        default=[],
        type=_target_arg,
        metavar="N=HOST:PORT|HOST:PORT",
        help="where pCPU N listens (repeatable); a single HOST:PORT without N= takes every record",
    )
    add_deprecated_flag(
        parser, "--pcpu-addr", dest="pcpu", use="--pcpu N=HOST:PORT", append=True, type=_target_arg
    )
    parser.add_argument(
        "--inventory", type=Path, metavar="FILE", help="pCPU addresses, as `serve xen` reads them"
    )
    parser.add_argument(
        "--speed",
        type=_positive,
        default=1.0,
        metavar="N",
        help="time scale: 2 replays twice as fast, 0.5 at half speed (default 1)",
    )
    parser.add_argument(
        "--max-gap",
        type=_non_negative,
        metavar="S",
        help="wait at most S seconds between two records (after --speed)",
    )
    parser.add_argument(
        "--files-pcpu",
        type=int,
        metavar="N",
        help="the pCPU of directory files whose names do not say",
    )
    parser.add_argument(
        "--type",
        dest="record_type",
        metavar="TYPE",
        help="mca|init|cmc|cpe: the type of directory files whose names do not say",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="check the dump and print the plan; send nothing"
    )
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_token_argument(parser)
    add_tls_argument(parser)


@dataclass(frozen=True)
class Targets:
    """Where each pCPU of the dump goes: its address, by pCPU number."""

    addresses: dict[int, str]
    single: str | None = None
    """The one address that takes every record (a bare --pcpu HOST:PORT)."""


def targets_from_args(args: argparse.Namespace, pcpus: Sequence[int]) -> Targets:
    """The address of every pCPU of the dump; exit 2 on bad flags or a pCPU with none."""
    from xenmca.xen.inventory import (
        InventoryError,
        load_inventory,
        merge_inventories,
        parse_pcpu_addr_flags,
    )

    bare = [flag.address for flag in args.pcpu if flag.pcpu is None]
    if bare:
        if len(args.pcpu) > 1 or args.inventory is not None:
            fail(PROG, "a --pcpu without N= takes every record: give it alone")
        return Targets(dict.fromkeys(pcpus, bare[0]), single=bare[0])
    try:
        known = merge_inventories(
            parse_pcpu_addr_flags(str(flag) for flag in args.pcpu),
            load_inventory(args.inventory) if args.inventory else {},
        )
    except InventoryError as exc:
        fail(PROG, str(exc))
    if not known:
        fail(PROG, "say where the pCPUs are: --pcpu N=HOST:PORT or --inventory FILE")
    missing = sorted(set(pcpus) - set(known))
    if missing:
        fail(
            PROG,
            f"the dump has records of pCPU {', '.join(map(str, missing))}, which "
            f"{'--inventory' if args.inventory else '--pcpu'} does not list "
            f"(known: {', '.join(map(str, sorted(known)))})",
        )
    return Targets({p: known[p] for p in pcpus})


def plan_replay(
    records: Sequence[DumpRecord], speed: float = 1.0, max_gap_s: float | None = None
) -> list[PlannedInjection]:
    """One injection per record (in replay order) at its time from the first, scaled."""
    from xenmca.testbed.run.workload_plan import PlannedInjection

    plan: list[PlannedInjection] = []
    last_at: dict[int, float] = {}
    previous_ns = records[0].time_ns if records else 0
    clock = 0.0
    for record in records:
        gap = (record.time_ns - previous_ns) / 1e9 / speed
        clock += gap if max_gap_s is None else min(gap, max_gap_s)
        previous_ns = record.time_ns
        at = max(clock, last_at.get(record.pcpu, -ORDER_STEP_S) + ORDER_STEP_S)
        last_at[record.pcpu] = at
        plan.append(
            PlannedInjection(
                at,
                record.pcpu,
                record.type.lower(),
                record.severity,
                1,
                0.0,
                record.where,
                record.raw,
            )
        )
    return plan


async def replay(
    plan: Sequence[PlannedInjection],
    addresses: Mapping[int, str],
    metadata: Sequence[tuple[str, str]] = (),
    *,
    credentials: Any = None,
    progress: Callable[[float], None] | None = None,
) -> WorkloadSummary:
    """Send the plan to the pCPUs at its times; what the workload driver counted."""
    from xenmca.rpc.channels import open_channel
    from xenmca.testbed.run.workload import WorkloadDriver

    driver = WorkloadDriver(
        plan,
        addresses,
        metadata,
        channel_factory=lambda address: open_channel(address, credentials),
    )
    return await driver.run(progress)


def outcome(
    summary: WorkloadSummary, records: Sequence[DumpRecord], speed: float, targets: Targets
) -> dict[str, Any]:
    span = (records[-1].time_ns - records[0].time_ns) / 1e9
    return {
        "records": len(records),
        "pcpus": sorted({r.pcpu for r in records}),
        "target": targets.single,
        "speed": speed,
        "dump_span_s": round(span, 6),
        "elapsed_s": round(summary.finished_at - summary.started_at, 3),
        "stored": summary.accepted_records - summary.overflowed_records,
        "overflowed": summary.overflowed_records,
        "failed": summary.failed_records,
        "retries": summary.retries,
        "max_lag_s": round(summary.max_lag_s, 6),
    }


def _print_outcome(result: dict[str, Any], dump: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    pcpus = result["pcpus"]
    onto = (
        f"pCPU at {result['target']}"
        if result["target"]
        else f"{len(pcpus)} pCPU{'s' if len(pcpus) != 1 else ''}"
    )
    print(
        f"replayed {result['records']} records of {dump} onto {onto} in "
        f"{result['elapsed_s']:g} s (the dump spans {result['dump_span_s']:g} s; speed "
        f"{result['speed']:g}): stored {result['stored']}, overflowed {result['overflowed']}, "
        f"not injected {result['failed']}"
    )


def _run_with_progress(
    plan: Sequence[PlannedInjection],
    targets: Targets,
    metadata: Sequence[tuple[str, str]],
    credentials: Any,
    show: bool,
) -> WorkloadSummary:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not show,
    )
    with bar:
        task = bar.add_task("replay", total=len(plan))

        def advance(fraction: float) -> None:
            bar.update(task, completed=round(fraction * len(plan)))

        return asyncio.run(
            replay(plan, targets.addresses, metadata, credentials=credentials, progress=advance)
        )


def run(args: argparse.Namespace) -> int:
    from xenmca.ops.dumps import DumpError, read_dump
    from xenmca.rpc.identity import OPERATOR

    try:
        records = read_dump(args.dump, pcpu=args.files_pcpu, record_type=args.record_type)
    except DumpError as exc:
        fail(PROG, str(exc))
    plan = plan_replay(records, args.speed, args.max_gap)
    if args.dry_run:
        pcpus = sorted({r.pcpu for r in records})
        span = plan[-1].t_s if plan else 0.0
        if args.json:
            print(
                json.dumps(
                    {
                        "dry_run": True,
                        "records": len(records),
                        "pcpus": pcpus,
                        "plan_span_s": round(span, 6),
                        "speed": args.speed,
                    },
                    indent=2,
                )
            )
            return 0
        print(
            f"would replay {len(records)} records of {args.dump} onto pCPUs "
            f"{', '.join(map(str, pcpus))} over {span:g} s (speed {args.speed:g})"
        )
        return 0
    targets = targets_from_args(args, sorted({r.pcpu for r in records}))
    metadata, credentials = client_auth(args, OPERATOR, PROG)
    summary = _run_with_progress(plan, targets, metadata, credentials, not args.no_progress)
    _print_outcome(outcome(summary, records, args.speed, targets), args.dump, args.json)
    return 0 if summary.failed_records == 0 else 1
