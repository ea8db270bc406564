"""Field checks shared by the record and section dataclasses; each raises a ValueError
whose message names the offending field."""

from __future__ import annotations

import uuid

Revision = tuple[int, int]
"""A sal_log_revision_t as (major, minor), each 0..99 (stored as BCD bytes)."""


def require_uint(name: str, value: object, bits: int) -> int:
    """``value`` as an int in 0 .. 2**bits - 1, or ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{name} must be a u{bits} (0..{(1 << bits) - 1}), got {value}")
    return value


def require_revision(name: str, value: object) -> Revision:
    """``value`` as a (major, minor) pair of 0..99 each."""
    if not isinstance(value, tuple) or len(value) != 2:
        raise ValueError(f"{name} must be a (major, minor) tuple, got {value!r}")
    major, minor = value
    for part, number in (("major", major), ("minor", minor)):
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 99:
            raise ValueError(f"{name} {part} must be 0..99 (one BCD byte), got {number!r}")
    return (major, minor)


def require_bytes(name: str, value: object, *, exact: int | None = None, limit: int = 0) -> bytes:
    """``value`` as bytes of length ``exact``, or at most ``limit`` when ``exact`` is None."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes, got {type(value).__name__}")
    data = bytes(value)
    if exact is not None and len(data) != exact:
        raise ValueError(f"{name} must be exactly {exact} bytes, got {len(data)}")
    if exact is None and len(data) > limit:
        raise ValueError(f"{name} must be at most {limit} bytes, got {len(data)}")
    return data


def require_uuid(name: str, value: object) -> uuid.UUID:
    if not isinstance(value, uuid.UUID):
        raise TypeError(f"{name} must be a uuid.UUID, got {type(value).__name__}")
    return value
