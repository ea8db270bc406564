"""`xenmca fault add|list|clear`: per-RPC fault rules in a running process (FaultService).

The target is any xenmca server: ``--xen HOST:PORT`` the coordinator, or ``--pcpu
HOST:PORT`` a pCPU's server, whose rules are shared by all its host's pCPUs;
``--pcpu N=HOST:PORT`` narrows a new rule to pCPU N (and list or clear to the rules
that act on it). Calls present the operator's token from --token-file or
$XENMCA_TOKEN_FILE, and with --tls-* the operator's client certificate.

The old spelling ``--target HOST:PORT`` (with ``--pcpu N`` to narrow a rule) still
works, with a warning.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from xenmca.cli_common import (
    add_deprecated_flag,
    add_tls_argument,
    add_token_argument,
    address_arg,
    client_auth,
    fail,
    fail_rpc,
)
from xenmca.rpc.flags import PcpuAddress, parse_pcpu_address, parse_pcpu_number

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


def _pcpu_arg(text: str) -> PcpuAddress | int:
    """``HOST:PORT`` or ``N=HOST:PORT``; a bare N is the old ``--target A --pcpu N``."""
    try:
        return parse_pcpu_number(text) if text.isdigit() else parse_pcpu_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (expected HOST:PORT or N=HOST:PORT)") from None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--xen", type=address_arg, metavar="HOST:PORT", help="the coordinator")
    parser.add_argument(
        "--pcpu",
        type=_pcpu_arg,
        metavar="HOST:PORT|N=HOST:PORT",
        help="a pCPU's server (rules are shared by its host's pCPUs); N= narrows to pCPU N",
    )
    add_deprecated_flag(
        parser,
        "--target",
        dest="target",
        use="--pcpu HOST:PORT (a pCPU's server, N=HOST:PORT for one pCPU) or --xen HOST:PORT",
        type=address_arg,
        metavar="HOST:PORT",
    )
    add_token_argument(parser)
    add_tls_argument(parser)


def target_of(args: argparse.Namespace, command: str) -> tuple[str, int | None]:
    """(the server's address, the pCPU named with it or None); exit 2 unless one target."""
    pcpu = args.pcpu
    number: int | None = None
    if isinstance(pcpu, int):
        if args.target is None:
            fail(command, f"--pcpu {pcpu}: expected HOST:PORT or N=HOST:PORT")
        number, pcpu = pcpu, None
    given = [where for where in (args.xen, pcpu, args.target) if where is not None]
    if len(given) != 1:
        fail(
            command,
            "name one target: --xen HOST:PORT (the coordinator) or --pcpu HOST:PORT|N=HOST:PORT",
        )
    if isinstance(pcpu, PcpuAddress):
        return pcpu.address, pcpu.pcpu
    return str(args.xen or args.target), number


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
    from xenmca.rpc.fault_rules import FaultAction, FaultRuleError, FaultSpec
    from xenmca.rpc.identity import OPERATOR
    from xenmca.testbed.infra import fault_client

    command = f"fault {args.fault_what}"
    address, pcpu = target_of(args, command)
    rule: fault_pb2.FaultRule | None = None
    if args.fault_what == "add":
        try:
            rule = FaultSpec(
                method=args.method,
                action=FaultAction.parse(args.action),
                pcpu=pcpu,
                delay=args.delay,
                count=args.count,
                duration=args.duration,
                skip=args.skip,
            ).to_proto()
        except FaultRuleError as exc:
            fail(command, f"--{exc.field}: {exc}")
    metadata, credentials = client_auth(args, OPERATOR, command)

    async def clear() -> int:
        if pcpu is None or args.fault_id is not None:
            return await fault_client.clear_faults(
                address, metadata, args.fault_id, credentials=credentials
            )
        # N=HOST:PORT without --id: the rules narrowed to pCPU N, one by one.
        listed = await fault_client.list_faults(address, metadata, credentials=credentials)
        cleared = 0
        for fault in listed:
            if fault["pcpu"] == pcpu:
                cleared += await fault_client.clear_faults(
                    address, metadata, fault["fault_id"], credentials=credentials
                )
        return cleared

    async def call() -> int:
        try:
            if rule is not None:
                print(
                    await fault_client.add_fault(address, rule, metadata, credentials=credentials)
                )
            elif args.fault_what == "clear":
                cleared = await clear()
                print(f"cleared {cleared} fault rule{'' if cleared == 1 else 's'}")
            else:
                faults = await fault_client.list_faults(address, metadata, credentials=credentials)
                if pcpu is not None:
                    faults = [f for f in faults if f["pcpu"] in (None, pcpu)]
                print(json.dumps(faults, indent=2) if args.json else format_table(faults))
        except grpc.aio.AioRpcError as exc:
            fail_rpc(command, address, exc)
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
