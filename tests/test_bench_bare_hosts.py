"""The scale section's memory yardstick (xenmca.testbed.bench.bare_hosts), for real:
bare gRPC servers held like pCPUs, and helper processes that die with the bench."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from xenmca.testbed.bench.bare_hosts import measure_bare_hosts


async def test_bare_hosts_hold_every_server_like_a_pcpu(tmp_path: Path) -> None:
    # The scale section's memory yardstick, for real: 5 servers in hosts of 2 (2, 2, 1),
    # each held with a channel, a call and an open stream.
    bare = await measure_bare_hosts(tmp_path, 5, 2, settle_seconds=0.1)
    assert (bare["servers"], bare["hosts"]) == (5, 3)
    assert bare["baseline_rss_mib"] > 5  # an interpreter with gRPC loaded
    # Three processes' baselines over five servers: more than one baseline per server.
    assert bare["rss_kib_per_server"] > bare["baseline_rss_mib"] * 1024 / 2
    assert 0 < bare["anon_kib_per_server"] < bare["rss_kib_per_server"]
    assert _bare_ports(tmp_path) == {"bare-host0": 2, "bare-host1": 2, "bare-host2": 1}


def _bare_ports(workdir: Path) -> dict[str, int]:
    return {p.stem: len(json.loads(p.read_text())) for p in workdir.glob("bare-host*.ports")}


def test_bare_servers_die_with_a_bench_killed_outright(tmp_path: Path) -> None:
    # A bench killed with SIGKILL runs no finally: its helper processes must not stay.
    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from xenmca.testbed.bench import bare_hosts\n"
        "async def main():\n"
        "    process, ports = await bare_hosts._start(Path(sys.argv[1]), 'host0', 1)\n"
        "    await bare_hosts._ports(process, ports, 60)\n"
        "    print(process.pid, flush=True)\n"
        "    await asyncio.sleep(120)\n"
        "asyncio.run(main())\n"
    )
    bench = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert bench.stdout is not None
    helper = int(bench.stdout.readline())
    assert _alive(helper)
    bench.kill()
    bench.wait(timeout=30)
    deadline = time.monotonic() + 30
    while _alive(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(helper)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
