"""Throttle settings: the ia64 constants, the presets, and loading them from a file or flags."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml


class ThrottleSettingsError(ValueError):
    """Settings that cannot be used; the message names the field."""


@dataclass(frozen=True)
class ThrottleSettings:
    """Every constant of the storm rule and the polling intervals, in seconds."""

    # An interrupt that makes history_length interrupts within window switches to polling.
    history_length: int = 5
    window: float = 1.0
    # CMC: poll at a fixed interval; an empty poll returns to interrupt mode.
    cmc_poll_interval: float = 60.0
    # CPE: the interval halves on records found and doubles on none, within [min, max].
    cpe_poll_min: float = 120.0
    cpe_poll_max: float = 900.0
    # Whether CPE lines have an interrupt vector; without one they poll forever.
    cpe_can_interrupt: bool = True
    # Which storm rule (xenmca.xen.throttle.LINE_POLICIES): "ia64" (mca.c, the settings
    # above), "x86-cmci" (Linux 6.8+ mce/threshold.c) or "leaky-bucket" (mcelog).
    policy: str = "ia64"
    # x86-cmci: history bits shift once per tick (HZ); cmci_storm_begin set bits start a
    # storm, polled every cmci_poll_interval; cmci_storm_end_polls empty polls end it.
    cmci_tick: float = 1.0
    cmci_poll_interval: float = 1.0
    cmci_storm_begin: int = 5
    cmci_storm_end_polls: int = 30
    # leaky-bucket: an overflow of bucket_capacity records, leaking bucket_capacity per
    # bucket_agetime, is a storm; polled every cmc_poll_interval.
    bucket_capacity: int = 5
    bucket_agetime: float = 1.0

    def validated(self) -> ThrottleSettings:
        if self.policy not in STORM_RULES:
            raise ThrottleSettingsError(
                f"policy must be one of {', '.join(STORM_RULES)} (got {self.policy!r})"
            )
        if not 2 <= self.history_length <= 1000:
            raise ThrottleSettingsError("history_length must be between 2 and 1000")
        for name, low, high in (
            ("cmci_storm_begin", 1, 64),
            ("cmci_storm_end_polls", 1, 64),
            ("bucket_capacity", 1, 1_000_000),
        ):
            if not low <= getattr(self, name) <= high:
                raise ThrottleSettingsError(f"{name} must be between {low} and {high}")
        for name in (
            "window",
            "cmc_poll_interval",
            "cpe_poll_min",
            "cpe_poll_max",
            "cmci_tick",
            "cmci_poll_interval",
            "bucket_agetime",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or not 0.001 <= value <= 86_400:
                raise ThrottleSettingsError(f"{name} must be between 0.001 and 86400 seconds")
        if self.cpe_poll_min > self.cpe_poll_max:
            raise ThrottleSettingsError("cpe_poll_min must not exceed cpe_poll_max")
        return self


STORM_RULES: tuple[str, ...] = ("ia64", "x86-cmci", "leaky-bucket")

PRESETS: dict[str, ThrottleSettings] = {
    # Linux/Xen ia64 mca.c: CMC_HISTORY_LENGTH 5 within HZ, CMC_POLL_INTERVAL 1 min,
    # MIN_CPE_POLL_INTERVAL 2 min, MAX_CPE_POLL_INTERVAL 15 min.
    "linux-ia64": ThrottleSettings(),
    # The same storm rule with polling in fractions of a second, for tests and demos.
    # x86-cmci ticks and polls ten times faster too (HZ 0.1 s: a 6.4 s history).
    "fast": ThrottleSettings(
        cmc_poll_interval=0.1,
        cpe_poll_min=0.05,
        cpe_poll_max=0.5,
        cmci_tick=0.1,
        cmci_poll_interval=0.1,
    ),
}


def load_settings(
    preset: str = "linux-ia64", path: Path | None = None, overrides: dict[str, Any] | None = None
) -> ThrottleSettings:
    """A preset, then a YAML/JSON settings file, then explicit overrides, validated."""
    if preset not in PRESETS:
        raise ThrottleSettingsError(
            f"unknown throttle preset {preset!r} (known: {', '.join(PRESETS)})"
        )
    settings = PRESETS[preset]
    values: dict[str, Any] = {}
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ThrottleSettingsError(f"{path}: cannot read settings: {exc}") from None
        if not isinstance(data, dict):
            raise ThrottleSettingsError(f"{path}: expected a mapping of setting: value")
        if "preset" in data:
            # Flags left unset (None) must not hide the file's own values.
            given = {k: v for k, v in (overrides or {}).items() if v is not None}
            return load_settings(str(data.pop("preset")), None, {**data, **given})
        values.update(data)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in fields(ThrottleSettings)}
    types: dict[str, type] = {
        "cpe_can_interrupt": bool,
        "history_length": int,
        "policy": str,
        "cmci_storm_begin": int,
        "cmci_storm_end_polls": int,
        "bucket_capacity": int,
    }
    for name, value in values.items():
        if name not in known:
            raise ThrottleSettingsError(f"unknown throttle setting {name!r}")
        expected = types.get(name, float)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise ThrottleSettingsError(f"throttle setting {name} must be a {expected.__name__}")
        values[name] = value
    return replace(settings, **values).validated()
