"""Shared by the scenario tests: the minimal scenario text and writing a file under tmp_path."""

from __future__ import annotations

from pathlib import Path

BASE = "name: t\nseed: 1\npcpus: 4\nduration_s: 10\n"


def write(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path
