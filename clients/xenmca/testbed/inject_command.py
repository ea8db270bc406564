"""`xenmca inject`: make one pCPU's hardware raise errors (SalService.InjectError)."""

from __future__ import annotations

import argparse
import asyncio

from xenmca.testbed.cli_common import (
    add_tls_argument,
    add_token_argument,
    address_arg,
    client_auth,
    describe_rpc_error,
    fail,
    record_type_arg,
    severity_arg,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pcpu-addr", required=True, type=address_arg, metavar="HOST:PORT")
    parser.add_argument("--type", required=True, type=record_type_arg, help="mca|init|cmc|cpe")
    parser.add_argument("--count", type=int, default=1, help="records to create (default 1)")
    parser.add_argument(
        "--severity", type=severity_arg, default=3, help="recoverable|fatal|corrected"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="records per second, created by the pCPU host itself (default: all at once)",
    )
    add_token_argument(parser)
    add_tls_argument(parser)


def run(args: argparse.Namespace) -> int:
    import grpc

    from xenmca.rpc.channels import open_channel
    from xenmca.rpc.identity import OPERATOR
    from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
    from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc

    if args.count < 1:
        fail("inject", f"--count must be at least 1 (got {args.count})")
    metadata, credentials = client_auth(args, OPERATOR, "inject")

    async def inject() -> int:
        async with open_channel(args.pcpu_addr, credentials) as channel:
            stub = sal_grpc.SalServiceStub(channel)
            try:
                reply = await stub.InjectError(
                    sal_pb2.InjectErrorRequest(
                        type=args.type,
                        severity=args.severity,
                        count=args.count,
                        rate_per_second=args.rate,
                    ),
                    timeout=60,
                    metadata=metadata,
                )
            except grpc.aio.AioRpcError as exc:
                fail("inject", f"{args.pcpu_addr}: {describe_rpc_error(exc)}")
        print(
            f"accepted {reply.accepted}, stored {reply.stored}, overflowed {reply.overflowed}"
            + (f", ids {reply.first_record_id}-{reply.last_record_id}" if reply.stored else "")
        )
        return 0

    return asyncio.run(inject())
