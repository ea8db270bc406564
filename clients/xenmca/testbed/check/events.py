"""Reading the run's merged events: by component and kind, and the line or record they name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# A pCPU's line of one record type: (pCPU, "CMC").
Line = tuple[int, str]

_TYPE_NUMBERS = {1: "MCA", 2: "INIT", 3: "CMC", 4: "CPE"}  # record.proto RecordType


def of_kind(events: Iterable[dict[str, Any]], component: str, *kinds: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("component") == component and e.get("kind") in kinds]


def type_name(value: object) -> str:
    """ "CMC" from "cmc", "RECORD_TYPE_CMC" or the proto number 3."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _TYPE_NUMBERS.get(value, str(value))
    return str(value).upper().removeprefix("RECORD_TYPE_")


def line_of(event: dict[str, Any]) -> Line:
    return (int(event["pcpu"]), type_name(event["type"]))


def t_ns(event: dict[str, Any]) -> int:
    return int(event["t_mono_ns"])
