"""A scenario problem as one line: the file, the field and what is wrong."""

from __future__ import annotations

from collections.abc import Iterable

MAX_MESSAGE = 300


class ScenarioError(ValueError):
    """A scenario that cannot be used. str() is one line: ``FILE: FIELD: what is wrong``.

    ``ScenarioError(file, field, message)``; field "" when the problem is the
    whole file. ``ScenarioError(text)`` alone takes text as the whole line.
    """

    def __init__(self, file: str, field: str = "", message: str | None = None) -> None:
        if message is None:
            file, message = "", file
        self.file = file
        self.field = field
        self.message = _one_line(message)
        parts = [p for p in (file, field, self.message) if p]
        super().__init__(": ".join(parts))


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


# -- built-in scenarios ------------------------------------------------------------------


def field_path(parts: Iterable[str | int]) -> str:
    """``workload.streams[0].rate`` from ("workload", "streams", 0, "rate")."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def number_text(value: float) -> str:
    return f"{value:g}"
