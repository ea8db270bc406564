"""`xenmca inject`: make one pCPU's hardware raise errors, and list or cancel paced injections.

``--type T [--count N] [--severity S] [--rate R]`` calls SalService.InjectError
(with ``--rate``, the pCPU host paces the records itself and this prints the
injection's id); ``--record FILE --type T`` stores real SAL records instead, one
InjectError (raw_record) per record of FILE (records back to back, a directory
of such files, or "-" for standard input), each decoded strictly here first so
that bad bytes send nothing; ``--list [--json]`` calls ListInjections and
``--cancel ID`` CancelInjection. All act as the operator on the pCPU that
``--pcpu HOST:PORT`` (or ``N=HOST:PORT``) names. ``--json`` prints the outcome of
each action as JSON (snake_case, every field).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC
from typing import TYPE_CHECKING, Any

from xenmca.cli_common import (
    add_deprecated_flag,
    add_tls_argument,
    add_token_argument,
    client_auth,
    describe_rpc_error,
    fail,
    fail_rpc,
    message_json,
    pcpu_address_arg,
    record_type_arg,
    rpc_exit_status,
    severity_arg,
)
from xenmca.vocab import type_name

if TYPE_CHECKING:
    from xenmca.ops.record_files import RecordInFile

INJECTION_OPTIONS = ("type", "count", "severity", "rate", "record")
"""The options of a new injection, which --list and --cancel do not take."""


def _injection_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an injection id: {text!r}") from None
    if not 1 <= value < 2**64:
        raise argparse.ArgumentTypeError(f"injection ids are 1 or more, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--pcpu",
        type=pcpu_address_arg,
        metavar="HOST:PORT|N=HOST:PORT",
        help="the pCPU whose hardware raises the errors (its SalService address)",
    )
    add_deprecated_flag(
        target, "--pcpu-addr", dest="pcpu", use="--pcpu HOST:PORT", type=pcpu_address_arg
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--list", action="store_true", help="list the paced injections running on the pCPU"
    )
    action.add_argument(
        "--cancel",
        type=_injection_id,
        metavar="ID",
        help="stop the paced injection ID; prints how many records it had created",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the outcome as JSON: the reply (snake_case, every field), the list of "
        "injections, or the cancelled one",
    )
    parser.add_argument(
        "--type", type=record_type_arg, help="mca|init|cmc|cpe (required to inject)"
    )
    parser.add_argument("--count", type=int, help="records to create (default 1)")
    parser.add_argument(
        "--severity", type=severity_arg, help="recoverable|fatal|corrected (default corrected)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        help="records per second, created by the pCPU host itself (default: all at once); "
        "it prints the injection's id for --cancel",
    )
    parser.add_argument(
        "--record",
        metavar="FILE|DIR|-",
        help="store real SAL records as given (their sections and severity; the pCPU writes "
        "its own record id into each header): a file of records back to back, a directory "
        "of such files, or - for stdin; --count copies each record",
    )
    add_token_argument(parser)
    add_tls_argument(parser)


def _check_options(args: argparse.Namespace) -> str:
    """Which action the options ask for ("inject", "list" or "cancel"); exit 2 if they clash."""
    action = "list" if args.list else "cancel" if args.cancel is not None else "inject"
    if action != "inject":
        given = [f"--{name}" for name in INJECTION_OPTIONS if getattr(args, name) is not None]
        if given:
            fail("inject", f"--{action} does not take {', '.join(given)}")
    elif args.type is None and args.record is not None:
        fail("inject", "--type is required with --record (a SAL record does not say its type)")
    elif args.type is None:
        fail("inject", "--type is required (or --list, or --cancel ID)")
    if args.record is not None and args.severity is not None:
        fail("inject", "--severity does not go with --record: the record's header gives it")
    if action == "inject" and args.count is not None and args.count < 1:
        fail("inject", f"--count must be at least 1 (got {args.count})")
    return action


def run(args: argparse.Namespace) -> int:
    import grpc

    from xenmca.rpc.channels import open_channel
    from xenmca.rpc.identity import OPERATOR
    from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
    from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

    action = _check_options(args)
    given = _read_given(args.record) if args.record is not None else None
    metadata, credentials = client_auth(args, OPERATOR, "inject")

    async def call(stub: sal_grpc.SalServiceStub) -> None:
        if action == "list":
            listed = await stub.ListInjections(
                sal_pb2.ListInjectionsRequest(), timeout=60, metadata=metadata
            )
            injections = [injection_dict(i) for i in listed.injections]
            print(json.dumps(injections, indent=2) if args.json else format_table(injections))
        elif action == "cancel":
            cancelled = await stub.CancelInjection(
                sal_pb2.CancelInjectionRequest(injection_id=args.cancel),
                timeout=60,
                metadata=metadata,
            )
            done = cancelled.injection
            if args.json:
                print(json.dumps(injection_dict(done), indent=2))
                return
            print(
                f"cancelled injection {done.injection_id}: created {done.created} of "
                f"{done.count} (stored {done.stored}, overflowed {done.overflowed})"
            )
        elif given is not None:
            line, totals = await inject_records(stub, given, args, metadata)
            print(json.dumps(totals, indent=2) if args.json else line)
        else:
            reply = await stub.InjectError(
                sal_pb2.InjectErrorRequest(
                    type=args.type,
                    severity=3 if args.severity is None else args.severity,  # type: ignore[arg-type]
                    count=1 if args.count is None else args.count,
                    rate_per_second=args.rate or 0.0,
                ),
                timeout=60,
                metadata=metadata,
            )
            if args.json:
                print(json.dumps(message_json(reply), indent=2))
            elif reply.injection_id:
                print(
                    f"accepted {reply.accepted}, paced at {args.rate:g}/s "
                    f"as injection {reply.injection_id}"
                )
            else:
                print(
                    f"accepted {reply.accepted}, stored {reply.stored}, "
                    f"overflowed {reply.overflowed}"
                    + (
                        f", ids {reply.first_record_id}-{reply.last_record_id}"
                        if reply.stored
                        else ""
                    )
                )

    async def main() -> int:
        async with open_channel(args.pcpu.address, credentials) as channel:
            try:
                await call(sal_grpc.SalServiceStub(channel))
            except grpc.aio.AioRpcError as exc:
                fail_rpc("inject", args.pcpu.address, exc)
        return 0

    return asyncio.run(main())


def _read_given(source: str) -> list[RecordInFile]:
    """The records of --record, each decoded strictly; exit 2 naming the file and offset."""
    from xenmca.ops.record_files import RecordFileError, read_records

    try:
        return read_records(source)
    except RecordFileError as exc:
        fail("inject", f"--record {exc}")


async def inject_records(
    stub: Any, records: list[RecordInFile], args: argparse.Namespace, metadata: Any
) -> tuple[str, dict[str, Any]]:
    """One InjectError per record, in order; the line to print and the totals (for
    --json). An RPC error stops it with one line naming the record and how many went
    before it."""
    import grpc

    from xenmca.ops.record_files import describe
    from xenmca.sal.v1 import sal_service_pb2 as sal_pb2

    accepted = stored = overflowed = 0
    ids: list[tuple[int, int]] = []
    for done, found in enumerate(records):
        try:
            reply = await stub.InjectError(
                sal_pb2.InjectErrorRequest(
                    type=args.type,
                    count=1 if args.count is None else args.count,
                    rate_per_second=args.rate or 0.0,
                    raw_record=found.raw,
                ),
                timeout=60,
                metadata=metadata,
            )
        except grpc.aio.AioRpcError as exc:
            before = f" ({done} of {len(records)} records injected before it)" if done else ""
            fail(
                "inject",
                f"{args.pcpu.address}: {found.where}: {describe_rpc_error(exc)}{before}",
                rpc_exit_status(exc),
            )
        accepted += reply.accepted
        stored += reply.stored
        overflowed += reply.overflowed
        if reply.injection_id:
            ids.append((reply.injection_id, reply.injection_id))
        elif reply.stored:
            ids.append((reply.first_record_id, reply.last_record_id))
    what = describe(records)
    totals: dict[str, Any] = {
        "records": len(records),
        "accepted": accepted,
        "stored": stored,
        "overflowed": overflowed,
        # Spans [first, last] of the record ids stored, or the paced injections' ids.
        "record_ids": [] if args.rate else [list(pair) for pair in ids],
        "injection_ids": [first for first, _ in ids] if args.rate else [],
    }
    if args.rate:
        line = f"{what}: accepted {accepted}, paced at {args.rate:g}/s as injections {_spans(ids)}"
        return line, totals
    return f"{what}: accepted {accepted}, stored {stored}, overflowed {overflowed}" + (
        f", ids {_spans(ids)}" if ids else ""
    ), totals


def _spans(pairs: list[tuple[int, int]]) -> str:
    """``7-9, 12`` from id ranges, joining ranges that follow each other."""
    merged: list[list[int]] = []
    for first, last in pairs:
        if merged and first == merged[-1][1] + 1:
            merged[-1][1] = last
        else:
            merged.append([first, last])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in merged)


def injection_dict(injection: Any) -> dict[str, Any]:
    """One PacedInjection as plain JSON values (started_at in ISO 8601, UTC)."""
    return {
        "injection_id": injection.injection_id,
        "type": type_name(injection.type),
        "severity": _severity_label(injection.severity),
        "count": injection.count,
        "created": injection.created,
        "stored": injection.stored,
        "overflowed": injection.overflowed,
        "rate_per_second": injection.rate_per_second,
        "started_at": injection.started_at.ToDatetime(tzinfo=UTC).isoformat(),
    }


def format_table(injections: list[dict[str, Any]]) -> str:
    """The injections as a plain text table (one line per injection)."""
    if not injections:
        return "no paced injections"
    header = ("ID", "TYPE", "SEVERITY", "RATE/S", "CREATED", "COUNT", "STARTED")
    rows = [header] + [
        (
            str(i["injection_id"]),
            i["type"],
            i["severity"],
            f"{i['rate_per_second']:g}",
            str(i["created"]),
            str(i["count"]),
            i["started_at"],
        )
        for i in injections
    ]
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _severity_label(value: int) -> str:
    from xenmca.record.v1 import record_pb2

    return record_pb2.Severity.Name(value).removeprefix("SEVERITY_")  # type: ignore[arg-type]
