"""`xenmca fault add|list|clear`: per-RPC fault rules in a running process (FaultService).

The target is any xenmca server: a pCPU's address (its host's rules are shared
by all the host's pCPUs; --pcpu narrows a rule to one of them) or the
coordinator's. Calls present the operator's token from --token-file or
$XENMCA_TOKEN_FILE, and with --tls-* the operator's client certificate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from xenmca.testbed.cli_common import (
    add_tls_argument,
    add_token_argument,
    address_arg,
    client_auth,
    describe_rpc_error,
    fail,
)

ACTIONS = ("drop-reply", "delay", "fail")


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0 or value > 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"expected 0..4294967295, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        required=True,
        type=address_arg,
        metavar="HOST:PORT",
        help="a pCPU's or the coordinator's address",
    )
    add_token_argument(parser)
    add_tls_argument(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(
        dest="fault_what", required=True, metavar="add|list|clear", parser_class=type(parser)
    )
    add = actions.add_parser("add", help="add a fault rule; prints its id")
    _common(add)
    add.add_argument(
        "--method",
        required=True,
        help="e.g. SalService.ClearStateInfo or xenmca.sal.v1.SalService/ClearStateInfo",
    )
    add.add_argument("--pcpu", type=_non_negative_int, help="only on this pCPU's server")
    add.add_argument(
        "--action",
        required=True,
        choices=ACTIONS,
        help="drop-reply: act, then lose the reply; delay: wait first; fail: UNAVAILABLE unacted",
    )
    add.add_argument("--delay", type=_seconds, default=0.0, metavar="S", help="for --action delay")
    add.add_argument(
        "--count", type=_non_negative_int, default=0, metavar="N", help="fire at most N times"
    )
    add.add_argument(
        "--skip",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="let the first N matching calls through",
    )
    add.add_argument(
        "--duration",
        type=_seconds,
        default=0.0,
        metavar="S",
        help="active for S seconds from now (default: until cleared)",
    )
    clear = actions.add_parser("clear", help="remove one fault rule (--id) or all of them")
    _common(clear)
    clear.add_argument("--id", dest="fault_id", help="the rule to remove (default: all)")
    listing = actions.add_parser("list", help="show the fault rules and how often they fired")
    _common(listing)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    import grpc

    from xenmca.fault.v1 import fault_service_pb2 as fault_pb2
    from xenmca.rpc.faults import FaultAction, FaultRuleError, FaultSpec
    from xenmca.rpc.identity import OPERATOR
    from xenmca.testbed import fault_client

    command = f"fault {args.fault_what}"
    rule: fault_pb2.FaultRule | None = None
    if args.fault_what == "add":
        try:
            rule = FaultSpec(
                method=args.method,
                action=FaultAction.parse(args.action),
                pcpu=args.pcpu,
                delay=args.delay,
                count=args.count,
                duration=args.duration,
                skip=args.skip,
            ).to_proto()
        except FaultRuleError as exc:
            fail(command, f"--{exc.field}: {exc}")
    metadata, credentials = client_auth(args, OPERATOR, command)

    async def call() -> int:
        try:
            if rule is not None:
                print(
                    await fault_client.add_fault(
                        args.target, rule, metadata, credentials=credentials
                    )
                )
            elif args.fault_what == "clear":
                cleared = await fault_client.clear_faults(
                    args.target, metadata, args.fault_id, credentials=credentials
                )
                print(f"cleared {cleared} fault rule{'' if cleared == 1 else 's'}")
            else:
                faults = await fault_client.list_faults(
                    args.target, metadata, credentials=credentials
                )
                print(json.dumps(faults, indent=2) if args.json else format_table(faults))
        except grpc.aio.AioRpcError as exc:
            fail(command, f"{args.target}: {describe_rpc_error(exc)}")
        return 0

    return asyncio.run(call())


def format_table(faults: list[dict[str, Any]]) -> str:
    """The rules as a plain text table (one line per rule)."""
    if not faults:
        return "no fault rules"
    header = ("ID", "METHOD", "PCPU", "ACTION", "SKIP", "COUNT", "DURATION", "FIRED", "STATE")
    rows = [header]
    for fault in faults:
        action = fault["action"]
        if action == "delay":
            action = f"delay {fault['delay']:g}s"
        rows.append(
            (
                fault["fault_id"],
                fault["method"],
                "all" if fault["pcpu"] is None else str(fault["pcpu"]),
                action,
                str(fault["skip"]),
                str(fault["count"]) if fault["count"] else "-",
                f"{fault['duration']:g}s" if fault["duration"] else "-",
                str(fault["fired"]),
                "expired" if fault["expired"] else "active",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
