"""Calibration: how fast this machine is during the run, measured by the run itself.

Before the workload clock starts, and again after the drain, the runner measures:

* the round trip: the median of `CALLS` sequential unary calls (the gRPC health
  Check every server answers) from the launcher to the coordinator and to the pCPU
  hosts, alternating (half to the coordinator, half spread over the hosts); the
  first `DISCARDED` calls on each channel, which open it, are not counted;
* the commit: the median of `COMMITS` durable SQLite commits (WAL,
  ``synchronous=FULL``, 1 KiB each) in the results folder, where dom0 logs;

and derives the floor, the least time one record takes here: 4 round trips (dom0's
GET and CLEAR, each through the coordinator to a pCPU) and 1 commit, as
``xenmca bench`` defines it. Relative latency bounds are counted in floors
(`xenmca.testbed.check.latency`). Each measurement is a ``calibration`` event of
the runner (``when``: ``start`` or ``end``), so it reaches the checkers and
results.json with the rest of the run.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from xenmca.testbed.bench.floor import measure_commit

CALLS = 64
DISCARDED = 2
COMMITS = 30
CALL_TIMEOUT_S = 5.0
CALIBRATION_EVENT = "calibration"
WARMUP_EVENT = "warmup"
WARMUP_FIELDS = ("channels", "plots_s", "errors")
# One record's floor: this many round trips and one commit.
ROUND_TRIPS_PER_RECORD = 4


@dataclass(frozen=True)
class Calibration:
    """One calibration: medians in milliseconds (None when nothing answered)."""

    rtt_ms: float | None
    commit_ms: float | None
    rtt_calls: int = 0
    commits: int = 0
    # The median round trip to each target ("xen", "pcpu-host0", ...).
    rtt_ms_by_target: dict[str, float] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    took_s: float = 0.0

    @property
    def floor_ms(self) -> float | None:
        """4 round trips + 1 commit; None when either is unknown."""
        if self.rtt_ms is None or self.commit_ms is None:
            return None
        return ROUND_TRIPS_PER_RECORD * self.rtt_ms + self.commit_ms

    def as_fields(self) -> dict[str, Any]:
        """The event's fields (and results.json's), rounded to microseconds."""
        floor = self.floor_ms
        return {
            "rtt_ms": _round(self.rtt_ms),
            "commit_ms": _round(self.commit_ms),
            "floor_ms": _round(floor),
            "rtt_calls": self.rtt_calls,
            "commits": self.commits,
            "rtt_ms_by_target": {k: _round(v) for k, v in self.rtt_ms_by_target.items()},
            "errors": list(self.errors),
            "took_s": round(self.took_s, 3),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def calibration_targets(xen_address: str, host_addresses: Sequence[str]) -> dict[str, str]:
    """{"xen": address, "pcpu-host<i>": the address of host i's first pCPU, ...}."""
    targets = {"xen": xen_address}
    targets.update({f"pcpu-host{i}": address for i, address in enumerate(host_addresses)})
    return targets


def _call_order(targets: Sequence[str], calls: int) -> list[str]:
    """Alternately the coordinator and the next pCPU host: xen, host0, xen, host1, ..."""
    hosts = [t for t in targets if t != "xen"]
    if not hosts or "xen" not in targets:
        every = hosts or list(targets)
        return [every[i % len(every)] for i in range(calls)] if every else []
    return ["xen" if i % 2 == 0 else hosts[i // 2 % len(hosts)] for i in range(calls)]


async def _round_trips(
    channel_for: Callable[[str], grpc.aio.Channel],
    targets: Mapping[str, str],
    metadata: Sequence[tuple[str, str]],
    calls: int,
) -> tuple[dict[str, list[float]], list[str]]:
    """Timed health checks per target (ms), after DISCARDED untimed ones on each channel."""
    channels = {name: channel_for(address) for name, address in targets.items()}
    samples: dict[str, list[float]] = {name: [] for name in targets}
    errors: list[str] = []
    broken: set[str] = set()
    request = health_pb2.HealthCheckRequest()
    try:
        stubs = {name: health_pb2_grpc.HealthStub(ch) for name, ch in channels.items()}
        for name, stub in stubs.items():
            for _ in range(DISCARDED):
                try:
                    await stub.Check(request, timeout=CALL_TIMEOUT_S, metadata=metadata)
                except grpc.aio.AioRpcError as exc:
                    errors.append(f"{name}: {exc.code().name}")
                    broken.add(name)
                    break
        for name in _call_order(list(targets), calls):
            if name in broken:
                continue
            started = time.perf_counter()
            try:
                await stubs[name].Check(request, timeout=CALL_TIMEOUT_S, metadata=metadata)
            except grpc.aio.AioRpcError as exc:
                errors.append(f"{name}: {exc.code().name}")
                broken.add(name)
                continue
            samples[name].append((time.perf_counter() - started) * 1000)
    finally:
        await asyncio.gather(*(ch.close() for ch in channels.values()), return_exceptions=True)
    return samples, errors


async def calibrate(
    channel_for: Callable[[str], grpc.aio.Channel],
    targets: Mapping[str, str],
    directory: Path,
    metadata: Sequence[tuple[str, str]] = (),
    *,
    calls: int = CALLS,
    commits: int = COMMITS,
) -> Calibration:
    """Round trips to `targets` (name -> address) and durable commits in `directory`."""
    began = time.perf_counter()
    samples, errors = await _round_trips(channel_for, targets, metadata, calls)
    every = [ms for values in samples.values() for ms in values]
    commit_ms: float | None = None
    committed = 0
    try:
        commit = await measure_commit(directory, commits=commits, warmup=3)
        commit_ms, committed = float(commit["p50_ms"]), int(commit["n"])
    except OSError as exc:  # a full or read-only results folder: no floor, said so
        errors.append(f"commit: {exc}")
    return Calibration(
        rtt_ms=statistics.median(every) if every else None,
        commit_ms=commit_ms,
        rtt_calls=len(every),
        commits=committed,
        rtt_ms_by_target={k: statistics.median(v) for k, v in samples.items() if v},
        errors=tuple(errors),
        took_s=time.perf_counter() - began,
    )


def calibrations(events: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The run's calibration events by `when` ("start", "end"), as recorded."""
    found: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.get("component") == "runner" and event.get("kind") == CALIBRATION_EVENT:
            skipped = ("component", "kind", "t_wall", "t_mono_ns", "when")
            fields = {k: v for k, v in event.items() if k not in skipped}
            found[str(event.get("when"))] = fields
    return found


def floor_of_run(events: Sequence[Mapping[str, Any]]) -> tuple[float | None, str]:
    """The floor relative bounds use: the slower of the start and end calibrations.

    Returns (floor in ms, which one: "start", "end" or why there is none).
    """
    found = {
        when: float(fields["floor_ms"])
        for when, fields in calibrations(events).items()
        if fields.get("floor_ms") is not None
    }
    if not found:
        return None, "no calibration measured a floor"
    when = max(found, key=lambda w: found[w])
    return found[when], when


def calibration_results(events: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """results.json's ``calibration``: each measurement, the floor used, and the warm-up."""
    found = calibrations(events)
    if not found:
        return None
    floor, which = floor_of_run(events)
    warmups = [
        e for e in events if e.get("component") == "runner" and e.get("kind") == WARMUP_EVENT
    ]
    warmup = {k: v for k, v in warmups[-1].items() if k in WARMUP_FIELDS} if warmups else None
    return {
        **found,
        "floor_ms": floor,
        "floor_from": which if floor is not None else None,
        "round_trips_per_floor": ROUND_TRIPS_PER_RECORD,
        "warmup": warmup,
    }
