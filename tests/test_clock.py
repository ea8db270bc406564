"""The injectable clock: the fake one's readings move together; event logs stamp from it."""

from __future__ import annotations

import json
from pathlib import Path

from xenmca.rpc.clock import FakeClock, MonotonicClock
from xenmca.rpc.events import EventLog


async def test_fake_clock_moves_monotonic_ns_and_wall_together() -> None:
    clock = FakeClock(start=10.0, wall_start=1_700_000_000.0)
    assert clock.now_ns() == 10_000_000_000
    await clock.advance(1.25)
    assert clock.now() == 11.25
    assert clock.now_ns() == 11_250_000_000
    assert clock.wall() == 1_700_000_001.25


def test_the_real_clock_reads_the_machine() -> None:
    clock = MonotonicClock()
    first = clock.now_ns()
    assert clock.now_ns() >= first
    assert abs(clock.now() - first / 1e9) < 60
    assert clock.wall() > 1_600_000_000


async def test_events_are_stamped_by_their_log_clock(tmp_path: Path) -> None:
    clock = FakeClock(start=5.0, wall_start=1_700_000_000.0)
    events = EventLog("xen", tmp_path / "events.jsonl", clock)
    events.emit("one")
    await clock.advance(0.5)
    second = events.emit("two", pcpu=3)
    events.close()
    assert second["t_mono_ns"] == 5_500_000_000 and second["t_wall"] == 1_700_000_000.5
    written = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(e["kind"], e["t_mono_ns"]) for e in written] == [
        ("one", 5_000_000_000),
        ("two", 5_500_000_000),
    ]
