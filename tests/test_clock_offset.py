"""The NTP-style estimate of a host's clock offset: exact on symmetric paths, bounded on skewed."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xenmca.rpc.channels import open_channel
from xenmca.testbed.infra.clock_offset import Sample, agent_offset, best_offset, estimate_offset


def test_a_symmetric_round_trip_gives_the_exact_offset() -> None:
    # The host is 300 s ahead; 1 ms each way; 0.2 ms on the host.
    offset = 300_000_000_000
    sample = Sample(
        t0=1_000,
        t1=1_000 + 1_000_000 + offset,
        t2=1_200_000 + 1_000 + offset + 1_000_000 - 1_000_000,
        t3=2_201_000,
    )
    assert sample.delay_ns == 2_000_000
    assert sample.offset_ns == offset
    estimate = best_offset([sample])
    assert estimate.offset_ns == offset and estimate.uncertainty_ns == 1_000_000
    assert estimate.to_runner_ns(1_000 + offset) == 1_000


@given(
    offset=st.integers(-(10**12), 10**12),
    legs=st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 10**7)), min_size=1, max_size=8),
    host_time=st.integers(0, 10**6),
)
def test_the_truth_is_always_within_the_stated_uncertainty(
    offset: int, legs: list[tuple[int, int]], host_time: int
) -> None:
    samples, now = [], 10**9
    for out_leg, back_leg in legs:
        t0 = now
        t1 = t0 + out_leg + offset
        t2 = t1 + host_time
        t3 = t2 - offset + back_leg
        samples.append(Sample(t0, t1, t2, t3))
        now = t3 + 1_000
    estimate = best_offset(samples)
    assert abs(estimate.offset_ns - offset) <= estimate.uncertainty_ns + 1e-6
    fastest = min(out + back for out, back in legs)
    assert estimate.uncertainty_ns == fastest / 2


async def test_estimate_keeps_the_fastest_of_its_round_trips() -> None:
    rng = random.Random(7)
    offset = -42_000_000_000  # the host is 42 s behind
    now = [5 * 10**9]  # the runner's clock, moved by the simulated legs below
    delays: list[int] = []

    def local_ns() -> int:
        return now[0]

    async def read_remote() -> tuple[int, int]:
        out_leg, back_leg = rng.randrange(100_000, 3_000_000), rng.randrange(100_000, 3_000_000)
        now[0] += out_leg
        t1 = now[0] + offset
        now[0] += 50_000 + back_leg
        delays.append(out_leg + back_leg)
        return t1, t1 + 50_000

    estimate = await estimate_offset(read_remote, samples=6, local_ns=local_ns)
    assert estimate.samples == 6
    assert estimate.uncertainty_ns == min(delays) / 2
    assert abs(estimate.offset_ns - offset) <= estimate.uncertainty_ns


def test_no_samples_is_an_error() -> None:
    with pytest.raises(ValueError, match="no clock samples"):
        best_offset([])


SKEW_S = 300


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root")
async def test_a_host_in_a_time_namespace_is_measured_minutes_ahead(tmp_path: Path) -> None:
    # The agent (and its child) in a Linux time namespace whose CLOCK_MONOTONIC is
    # SKEW_S ahead of ours: the estimate finds the skew within its stated uncertainty.
    ready = tmp_path / "ready.json"
    agent = await asyncio.create_subprocess_exec(
        *("unshare", "--time", "--monotonic", str(SKEW_S), "--boottime", str(SKEW_S)),
        *(sys.executable, "-m", "xenmca.cli", "agent", "--listen", "127.0.0.1:0"),
        *("--ready-file", str(ready), "--no-start", "--", "serve", "pcpu", "--pcpus", "0"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(30):
            while not ready.exists():
                if agent.returncode is not None:
                    raise AssertionError(await agent.stderr.read())  # type: ignore[union-attr]
                await asyncio.sleep(0.05)
        address = json.loads(ready.read_text())["address"]
        async with open_channel(address) as channel:
            estimate = await agent_offset(channel, samples=8)
        skew_ns = SKEW_S * 1_000_000_000
        assert abs(estimate.offset_ns - skew_ns) <= estimate.uncertainty_ns
        assert estimate.uncertainty_ns < 50_000_000  # a loopback round trip, not seconds
    finally:
        agent.terminate()
        await agent.wait()
