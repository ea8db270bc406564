"""`xenmca up`: a local testbed (pCPU hosts, coordinator, dom0) that runs until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pcpus", type=int, default=8, help="simulated pCPUs (default 8)")
    parser.add_argument("--pcpus-per-host", type=int, default=64, help="pCPUs per host process")
    parser.add_argument("--vcpu0-pcpu", type=int, default=0, help="pCPU dom0 vCPU0 runs on")
    parser.add_argument("--dir", type=Path, help="working folder (default: a new temp folder)")
    parser.add_argument(
        "--throttle-preset", default="fast", help="fast (default) or linux-ia64 (real intervals)"
    )


def run(args: argparse.Namespace) -> int:
    from xenmca.rpc.lifecycle import run_until_signal, wait_for_stop_signal
    from xenmca.testbed.launcher import LocalTestbed, TestbedSpec
    from xenmca.testbed.processes import ProcessStartError

    if not 1 <= args.pcpus <= 4096:
        print(f"xenmca up: error: --pcpus must be 1..4096 (got {args.pcpus})", file=sys.stderr)
        return 2
    if not 0 <= args.vcpu0_pcpu < args.pcpus:
        print("xenmca up: error: --vcpu0-pcpu must be one of the pCPUs", file=sys.stderr)
        return 2
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="xenmca-up-"))
    spec = TestbedSpec(
        workdir=workdir,
        pcpus=args.pcpus,
        pcpus_per_host=args.pcpus_per_host,
        vcpu0_pcpu=args.vcpu0_pcpu,
        throttle_preset=args.throttle_preset,
    )

    async def up() -> int:
        try:
            async with LocalTestbed(spec) as bed:
                first, last = min(bed.pcpu_addresses), max(bed.pcpu_addresses)
                print(f"coordinator  {bed.xen_address}")
                print(
                    f"pCPUs        {first}-{last} on {bed.pcpu_addresses[first]} .. "
                    f"{bed.pcpu_addresses[last]}"
                )
                print(f"dom0 log     {bed.db_path}")
                print(f"tokens       {bed.token_file}")
                print(f"folder       {workdir}")
                print("try:")
                print(f"  export XENMCA_TOKEN_FILE={bed.token_file}")
                print(
                    f"  xenmca inject --pcpu-addr {bed.pcpu_addresses[first]} --type cmc --count 3"
                )
                print(f"  xenmca status --xen {bed.xen_address}")
                print(f"  xenmca log summary --db {bed.db_path}")
                print("Ctrl-C stops everything.", flush=True)
                await wait_for_stop_signal()
                print("stopping...", flush=True)
        except ProcessStartError as exc:
            print(f"xenmca up: error: testbed did not start: {exc}", file=sys.stderr)
            return 2
        return 0

    return run_until_signal(up)
