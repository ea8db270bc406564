"""Reading the run's merged events: by component and kind, and the line or record they name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from xenmca.vocab import type_name

# A pCPU's line of one record type: (pCPU, "CMC").
Line = tuple[int, str]


def of_kind(events: Iterable[dict[str, Any]], component: str, *kinds: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("component") == component and e.get("kind") in kinds]


def line_of(event: dict[str, Any]) -> Line:
    return (int(event["pcpu"]), type_name(event["type"]))


def t_ns(event: dict[str, Any]) -> int:
    return int(event["t_mono_ns"])
