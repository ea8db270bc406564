"""Shared by the API tests (test_api_docs*.py): the repository root and its protos folder."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
