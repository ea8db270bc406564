"""`xenmca status`: a coordinator's (or one pCPU's) state as tables, or as JSON.

``--json`` prints the DescribeHypervisor (or DescribePcpu) reply as results.json
spells things: snake_case field names, every field (zeros and empty lists too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import grpc

from xenmca.cli_common import (
    Metadata,
    add_deprecated_flag,
    add_tls_argument,
    add_token_argument,
    address_arg,
    client_auth,
    fail,
    fail_rpc,
    message_json,
    pcpu_address_arg,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--xen", type=address_arg, metavar="HOST:PORT", help="a coordinator")
    target.add_argument(
        "--pcpu",
        type=pcpu_address_arg,
        metavar="HOST:PORT|N=HOST:PORT",
        help="one pCPU (with N=, the pCPU there must be pCPU N)",
    )
    add_deprecated_flag(
        target, "--pcpu-addr", dest="pcpu", use="--pcpu HOST:PORT", type=pcpu_address_arg
    )
    parser.add_argument(
        "--json", action="store_true", help="print the state as JSON (snake_case, every field)"
    )
    add_token_argument(parser)
    add_tls_argument(parser)


async def _fetch(
    args: argparse.Namespace, metadata: Metadata, credentials: grpc.ChannelCredentials | None
) -> Any:

    from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
    from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
    from xenmca.rpc.channels import open_channel
    from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
    from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

    address = args.xen or args.pcpu.address
    async with open_channel(address, credentials) as channel:
        try:
            if args.xen:
                return await hv_grpc.HypervisorServiceStub(channel).DescribeHypervisor(
                    hv_pb2.DescribeHypervisorRequest(), timeout=10, metadata=metadata
                )
            return await sal_grpc.SalServiceStub(channel).DescribePcpu(
                sal_pb2.DescribePcpuRequest(), timeout=10, metadata=metadata
            )
        except grpc.aio.AioRpcError as exc:
            fail_rpc("status", address, exc)


def run(args: argparse.Namespace) -> int:
    from xenmca.ops.status_view import print_hypervisor, print_pcpu
    from xenmca.rpc.identity import OPERATOR

    metadata, credentials = client_auth(args, OPERATOR, "status")
    state = asyncio.run(_fetch(args, metadata, credentials))
    if args.pcpu is not None and args.pcpu.pcpu not in (None, state.pcpu):
        fail("status", f"--pcpu {args.pcpu}: that address serves pCPU {state.pcpu}")
    if args.json:
        print(json.dumps(message_json(state), indent=2))
    elif args.xen:
        print_hypervisor(state)
    else:
        print_pcpu(state)
    return 0
