"""One row of `xenmca bench`'s report, and what each section's rows are built with.

Every row is one figure: what was measured, its target, the ratio that the
target is about (to the floor where the target is relative to a floor,
otherwise to the target itself) and whether the target is met. Each section
module builds its own rows from its figures (`rows(...)`); a figure that is
missing (the section was not run, or failed) stays None.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Row:
    """One line of the report."""

    section: str
    name: str
    unit: str
    measured: float | None
    target: str = ""
    ratio: float | None = None
    met: bool | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def figure(data: dict[str, Any] | None, *path: str) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    return round(a / b, digits) if a is not None and b else None


def at_least(ratio: float | None, bound: float) -> bool | None:
    return None if ratio is None else ratio >= bound


def at_most(ratio: float | None, bound: float) -> bool | None:
    return None if ratio is None else ratio <= bound


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    return str(value)
