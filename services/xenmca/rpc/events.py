"""Structured events: one JSON object per line, with monotonic and wall-clock timestamps.

Every component writes its own event file; CLOCK_MONOTONIC is shared by all
processes on one machine, so `t_mono_ns` orders events across components. The
stamps come from the log's `Clock` (the real one unless a run is on virtual time).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from xenmca.rpc.clock import Clock, MonotonicClock

Event = dict[str, Any]

_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)
"""One encoder for every line: json.dumps with options builds a new one per call."""


class EventLog:
    """Writes events as JSON lines (line-buffered: one write per event) and feeds listeners."""

    def __init__(
        self, component: str, path: Path | None = None, clock: Clock | None = None
    ) -> None:
        self.component = component
        self.clock: Clock = clock or MonotonicClock()
        self._file: IO[str] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        self._listeners: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call listener for every event from now on; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def emit(self, kind: str, **fields: Any) -> Event:
        event: Event = {
            "t_mono_ns": self.clock.now_ns(),
            "t_wall": self.clock.wall(),
            "component": self.component,
            "kind": kind,
            **fields,
        }
        if self._file is not None:
            line = _ENCODER.encode(event)
            with self._lock:
                self._file.write(line + "\n")
        for listener in list(self._listeners):
            listener(event)
        return event

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_events(path: Path) -> list[Event]:
    """All events of a file; a torn last line (a process killed mid-write) is skipped."""
    events: list[Event] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events
